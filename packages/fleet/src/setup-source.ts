import type { SetupSource } from './types.js';

/** A setup source in the flat form callers take it (HTTP body, CLI flags). */
export interface SetupSourceFields {
  /** `.img` or `.img.xz` */
  image?: string;
  bootTarball?: string;
  rootTarball?: string;
  bootDir?: string;
  rootfsDir?: string;
}

/** Why the fields name no usable source; each caller words it in its own terms (flags, JSON fields). */
export type SetupSourceProblem = 'not-exactly-one' | 'tarball-pair' | 'dir-pair';

/** The one source the fields name: an image, both tarballs or both folders. Pure. */
export function chooseSetupSource(fields: SetupSourceFields): { source: SetupSource } | { problem: SetupSourceProblem } {
  const kinds = [fields.image, fields.bootTarball || fields.rootTarball, fields.bootDir || fields.rootfsDir].filter(Boolean);
  if (kinds.length !== 1) return { problem: 'not-exactly-one' };
  if (fields.image) return { source: { kind: 'image', image: fields.image } };
  if (fields.bootTarball || fields.rootTarball) {
    return fields.bootTarball && fields.rootTarball
      ? { source: { kind: 'tarballs', boot: fields.bootTarball, root: fields.rootTarball } }
      : { problem: 'tarball-pair' };
  }
  return fields.bootDir && fields.rootfsDir
    ? { source: { kind: 'dirs', boot: fields.bootDir, root: fields.rootfsDir } }
    : { problem: 'dir-pair' };
}
