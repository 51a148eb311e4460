// The p-quantile (0 <= p <= 1) of an ascending list by the nearest-rank
// rule the benchmarks print (p50, p90, p99); null for an empty list.
export function percentile (sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : null
}
