module perfcatch-gt-go

go 1.22
