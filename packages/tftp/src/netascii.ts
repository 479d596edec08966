const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

/** Converts local bytes to netascii (RFC 764 via RFC 1350): LF → CR LF, bare CR → CR NUL. */
export function toNetascii(bytes: Uint8Array): Uint8Array {
  let extra = 0;
  for (const b of bytes) if (b === LF || b === CR) extra++;
  if (extra === 0) return bytes.slice();
  const out = new Uint8Array(bytes.length + extra);
  let at = 0;
  for (const b of bytes) {
    if (b === LF) {
      out[at++] = CR;
      out[at++] = LF;
    } else if (b === CR) {
      out[at++] = CR;
      out[at++] = NUL;
    } else out[at++] = b;
  }
  return out;
}

/** The inverse of toNetascii: CR LF → LF, CR NUL → CR; a CR followed by anything else is kept. */
export function fromNetascii(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  let at = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === CR && i + 1 < bytes.length) {
      const next = bytes[i + 1];
      if (next === LF) {
        out[at++] = LF;
        i++;
        continue;
      }
      if (next === NUL) {
        out[at++] = CR;
        i++;
        continue;
      }
    }
    out[at++] = b;
  }
  return out.slice(0, at);
}
