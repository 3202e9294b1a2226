/**
 * The one rule of both flag parsers (`perfcatch agent` in src/config.ts, the query commands in
 * src/cli/args.ts): every flag takes a single value, so a flag given twice is reported, not
 * settled by keeping one of the values: that would hide which one the user meant.
 */
export function rejectRepeatedFlag(flag: string, alreadyGiven: boolean, usageError: (message: string) => Error): void {
  if (alreadyGiven) throw usageError(`${flag}: given more than once`);
}
