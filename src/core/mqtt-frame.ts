// Follows an MQTT byte stream packet by packet from the fixed headers alone (a type byte, then the remaining
// length in 1 to 4 bytes of 7 bits each), without keeping any of it: the broker's parser (mqtt-packet) gathers a
// whole packet before it looks at it, so a CONNECT that declares 256 MiB would be held until it is complete, before
// any credential is checked. Scanning what arrives lets the broker refuse a packet as soon as its header declares
// more than the connection may send. Pure: the broker feeds it the bytes (src/broker/limits.ts).

export class FrameScanner {
  /** Body bytes of the current packet still to come. */
  private body = 0;
  /** Within a fixed header: after its type byte, while its remaining length is read. */
  private inLength = false;
  private length = 0;
  private lengthBytes = 0;
  /** Packets begun so far (a reader's rate counts each as at least a floor of bytes: broker/limits.ts). */
  packets = 0;

  /**
   * Scans the next bytes of the stream. Returns why the stream must be closed (a packet declared over `limit`
   * bytes, or a remaining length longer than MQTT allows), or undefined while it keeps within bounds.
   */
  scan(buf: Uint8Array, limit: number): string | undefined {
    const n = buf.length;
    let i = 0;
    while (i < n) {
      if (this.body > 0) {
        const take = Math.min(this.body, n - i);
        this.body -= take;
        i += take;
        continue;
      }
      if (!this.inLength) {
        this.packets++;
        this.inLength = true;
        this.length = 0;
        this.lengthBytes = 0;
        i++;
        continue;
      }
      const b = buf[i++]!;
      this.length += (b & 0x7f) * 128 ** this.lengthBytes++;
      if (b & 0x80) {
        if (this.lengthBytes === 4) return "malformed remaining length";
        continue;
      }
      this.inLength = false;
      if (this.length > limit) return `a packet of ${this.length} bytes, over the limit of ${limit}`;
      this.body = this.length;
    }
    return undefined;
  }
}
