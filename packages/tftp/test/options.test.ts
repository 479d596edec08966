import { describe, expect, it } from 'vitest';
import { negotiateOptions } from '../src/index.js';
import type { NegotiatedOptions, TftpOptions } from '../src/index.js';

const limits = { maxBlksize: 1468, maxWindowsize: 64 };

const cases: [string, TftpOptions, string, number | undefined, Partial<NegotiatedOptions>][] = [
  ['no options → DATA 1 directly', {}, 'octet', 100, { blksize: 512, windowsize: 1, oack: null }],
  [
    'Pi 4 tsize probe',
    { tsize: '0', blksize: '1468' },
    'octet',
    2974208,
    { blksize: 1468, tsize: 2974208, oack: { tsize: '2974208', blksize: '1468' } },
  ],
  ['old Pi 4 EEPROM blksize 1024', { tsize: '0', blksize: '1024' }, 'octet', 5, { blksize: 1024, oack: { tsize: '5', blksize: '1024' } }],
  ['blksize over the cap is lowered to the cap', { blksize: '65464' }, 'octet', 1, { blksize: 1468, oack: { blksize: '1468' } }],
  ['blksize beyond RFC range is capped too', { blksize: '70000' }, 'octet', 1, { blksize: 1468, oack: { blksize: '1468' } }],
  ['blksize minimum 8 accepted', { blksize: '8' }, 'octet', 1, { blksize: 8, oack: { blksize: '8' } }],
  ['blksize 7 not acknowledged', { blksize: '7' }, 'octet', 1, { blksize: 512, oack: null }],
  ['blksize not a number not acknowledged', { blksize: 'big' }, 'octet', 1, { blksize: 512, oack: null }],
  ['unknown options absent from OACK', { multicast: '', foo: '1', tsize: '0' }, 'octet', 7, { oack: { tsize: '7' } }],
  ['unknown options only → no OACK', { rollover: '0' }, 'octet', 7, { oack: null }],
  ['timeout 1 echoed', { timeout: '1' }, 'octet', 7, { timeoutSec: 1, oack: { timeout: '1' } }],
  ['timeout 255 echoed', { timeout: '255' }, 'octet', 7, { timeoutSec: 255, oack: { timeout: '255' } }],
  ['timeout 0 not acknowledged', { timeout: '0' }, 'octet', 7, { oack: null }],
  ['timeout 256 not acknowledged', { timeout: '256' }, 'octet', 7, { oack: null }],
  ['windowsize granted', { windowsize: '16' }, 'octet', 7, { windowsize: 16, oack: { windowsize: '16' } }],
  ['windowsize lowered to our max', { windowsize: '1000' }, 'octet', 7, { windowsize: 64, oack: { windowsize: '64' } }],
  ['windowsize 0 not acknowledged', { windowsize: '0' }, 'octet', 7, { windowsize: 1, oack: null }],
  ['windowsize 65536 not acknowledged', { windowsize: '65536' }, 'octet', 7, { windowsize: 1, oack: null }],
  ['netascii never offers tsize', { tsize: '0', blksize: '1024' }, 'netascii', 7, { oack: { blksize: '1024' } }],
  ['unknown size never offers tsize', { tsize: '0' }, 'octet', undefined, { oack: null }],
  [
    'curl set',
    { tsize: '0', blksize: '1468', timeout: '6' },
    'octet',
    300000,
    { oack: { tsize: '300000', blksize: '1468', timeout: '6' } },
  ],
  [
    'edk2 set',
    { tsize: '0', blksize: '1468', windowsize: '4' },
    'octet',
    9,
    { windowsize: 4, oack: { tsize: '9', blksize: '1468', windowsize: '4' } },
  ],
];

describe('negotiateOptions', () => {
  it.each(cases)('%s', (_name, options, mode, fileSize, expected) => {
    const result = negotiateOptions({ options, mode, ...(fileSize !== undefined ? { fileSize } : {}) }, limits);
    expect(result).toMatchObject(expected);
    if (expected.oack) expect(Object.keys(result.oack ?? {})).toEqual(Object.keys(expected.oack));
    if (result.oack) for (const key of Object.keys(result.oack)) expect(Object.keys(options)).toContain(key);
  });

  it('windowsize is refused when the server turns it off', () => {
    expect(
      negotiateOptions({ options: { windowsize: '8' }, mode: 'octet', fileSize: 1 }, { maxBlksize: 1468, maxWindowsize: 0 }),
    ).toMatchObject({ windowsize: 1, oack: null });
  });

  it('a configured cap below 1468 is honoured', () => {
    expect(
      negotiateOptions({ options: { blksize: '1468' }, mode: 'octet', fileSize: 1 }, { maxBlksize: 1432, maxWindowsize: 0 }).blksize,
    ).toBe(1432);
  });
});
