{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "perfcatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, plus the chart name unless the release name already contains it.
Truncated to 63 characters; component names are "<fullname>-<component>", so they stay short
enough for the usual release names.
*/}}
{{- define "perfcatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "perfcatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels. Call with (dict "ctx" $ "component" "agent").
*/}}
{{- define "perfcatch.labels" -}}
helm.sh/chart: {{ include "perfcatch.chart" .ctx }}
{{ include "perfcatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: perfcatch
{{- end }}

{{/*
Selector labels. Call with (dict "ctx" $ "component" "agent").
*/}}
{{- define "perfcatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "perfcatch.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Name of a bundled component's resources: "<fullname>-<component>".
Call with (dict "ctx" $ "component" "prometheus").
*/}}
{{- define "perfcatch.componentName" -}}
{{- printf "%s-%s" (include "perfcatch.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "perfcatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "perfcatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference "repository:tag". Call with (dict "image" .Values.x.image "default" "1.0").
*/}}
{{- define "perfcatch.image" -}}
{{- printf "%s:%s" .image.repository (toString (default .default .image.tag)) }}
{{- end }}

{{/*
A list value as a comma-separated string: YAML lists are joined, strings and numbers kept.
*/}}
{{- define "perfcatch.csv" -}}
{{- if kindIs "slice" . }}
{{- join "," . }}
{{- else if kindIs "invalid" . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
In-cluster base URL of a bundled component's Service: http://<name>.<namespace>.svc:<port>.
Call with (dict "ctx" $ "name" "..." "port" 1234).
*/}}
{{- define "perfcatch.serviceUrl" -}}
{{- printf "http://%s.%s.svc:%v" .name .ctx.Release.Namespace .port }}
{{- end }}

{{/*
The agent's OTLP endpoint: config.otlpEndpoint, else the bundled collector, else the bundled
Jaeger, else empty (span export off).
*/}}
{{- define "perfcatch.otlpEndpoint" -}}
{{- if .Values.config.otlpEndpoint }}
{{- .Values.config.otlpEndpoint }}
{{- else if .Values.otelCollector.enabled }}
{{- include "perfcatch.serviceUrl" (dict "ctx" . "name" (include "perfcatch.componentName" (dict "ctx" . "component" "otel-collector")) "port" .Values.otelCollector.service.grpcPort) }}
{{- else if .Values.jaeger.enabled }}
{{- include "perfcatch.serviceUrl" (dict "ctx" . "name" (include "perfcatch.componentName" (dict "ctx" . "component" "jaeger")) "port" .Values.jaeger.service.grpcPort) }}
{{- end }}
{{- end }}

{{/*
The agent's remote-write URL: config.remoteWriteUrl, else the bundled VictoriaMetrics, else empty.
*/}}
{{- define "perfcatch.remoteWriteUrl" -}}
{{- if .Values.config.remoteWriteUrl }}
{{- .Values.config.remoteWriteUrl }}
{{- else if .Values.victoriametrics.enabled }}
{{- include "perfcatch.serviceUrl" (dict "ctx" . "name" (include "perfcatch.componentName" (dict "ctx" . "component" "victoriametrics")) "port" .Values.victoriametrics.service.port) }}/api/v1/write
{{- end }}
{{- end }}

{{/*
The agent's SQLite path on the node (and in the container, mounted at the same path), or empty.
*/}}
{{- define "perfcatch.dbPath" -}}
{{- if .Values.sqlite.enabled }}
{{- printf "%s/%s" (trimSuffix "/" .Values.sqlite.hostPath) .Values.sqlite.fileName }}
{{- end }}
{{- end }}

{{/*
The Prometheus URL Grafana's datasource points at.
*/}}
{{- define "perfcatch.grafanaPrometheusUrl" -}}
{{- if .Values.prometheus.enabled }}
{{- include "perfcatch.serviceUrl" (dict "ctx" . "name" (include "perfcatch.componentName" (dict "ctx" . "component" "prometheus")) "port" .Values.prometheus.service.port) }}
{{- else if .Values.grafana.prometheusUrl }}
{{- .Values.grafana.prometheusUrl }}
{{- else }}
{{- fail "grafana.enabled needs a Prometheus: set prometheus.enabled=true or grafana.prometheusUrl" }}
{{- end }}
{{- end }}

{{/*
Restricted container securityContext shared by the bundled components (not the agent).
*/}}
{{- define "perfcatch.restrictedContainerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The Secret holding the API token (api.expose). */}}
{{- define "perfcatch.apiTokenSecret" -}}
{{- .Values.api.existingSecret | default (printf "%s-api-token" (include "perfcatch.fullname" .)) -}}
{{- end }}

{{/* Where the agent reads the API token from. */}}
{{- define "perfcatch.apiTokenDir" -}}
/var/run/secrets/perfcatch
{{- end }}

{{- define "perfcatch.apiTokenFile" -}}
{{ include "perfcatch.apiTokenDir" . }}/token
{{- end }}
