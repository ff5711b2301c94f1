// Bounded caches kept as insertion-ordered Maps: the first key is the least recently used.

/** Sets `key` as the most recently used entry, dropping the least recently used one past `max` entries. */
export function touch<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value!);
}
