/**
 * Runs `task` on every item with at most `limit` running at once, and settles each: the
 * results come back in the items' order, failures as rejected results rather than thrown.
 */
export async function settleBounded<T, U>(items: readonly T[], limit: number, task: (item: T) => Promise<U>): Promise<PromiseSettledResult<U>[]> {
  const results = new Array<PromiseSettledResult<U>>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { status: 'fulfilled', value: await task(items[i]!) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
