import { describe, expect, it } from 'vitest';
import { pythonG, renderTable } from '../src/table.js';

const HEAD = ['Serial', 'Owner', 'Name', 'MAC', 'IP'];

describe('renderTable (tabulate "simple", headers="firstrow")', () => {
  it.each([
    {
      label: 'README example (docs/pxetools-compat.md B1 item 25)',
      rows: [['0x9f55bbfd', 'jo', 'rpi4', 'b8:27:eb:55:bb:fd', 'Not found']],
      out: 'Serial      Owner    Name    MAC                IP\n----------  -------  ------  -----------------  ---------\n0x9f55bbfd  jo       rpi4    b8:27:eb:55:bb:fd  Not found',
    },
    { label: 'no Pis', rows: [], out: 'Serial    Owner    Name    MAC    IP\n--------  -------  ------  -----  ----' },
    {
      label: 'trailing newline of owner/name files does not show',
      rows: [['0x0a1b2c3d', 'gordon\n', 'Not Found', 'b8:27:eb:1b:2c:3d', '10.77.0.101']],
      out: 'Serial      Owner    Name       MAC                IP\n----------  -------  ---------  -----------------  -----------\n0x0a1b2c3d  gordon   Not Found  b8:27:eb:1b:2c:3d  10.77.0.101',
    },
    {
      label: 'numeric names are right-aligned, header too',
      rows: [
        ['0x0a1b2c3d', 'jo', '123', 'b8:27:eb:1b:2c:3d', 'Not found'],
        ['0x9f55bbfd', 'jo', '7', 'b8:27:eb:55:bb:fd', 'Not found'],
      ],
      out:
        'Serial      Owner      Name  MAC                IP\n----------  -------  ------  -----------------  ---------\n' +
        '0x0a1b2c3d  jo          123  b8:27:eb:1b:2c:3d  Not found\n0x9f55bbfd  jo            7  b8:27:eb:55:bb:fd  Not found',
    },
    {
      label: 'a mixed column stays left-aligned',
      rows: [
        ['0x0a1b2c3d', 'jo', '123', 'm', 'Not found'],
        ['0x9f55bbfd', 'jo', 'rpi', 'm', 'Not found'],
      ],
      out: 'Serial      Owner    Name    MAC    IP\n----------  -------  ------  -----  ---------\n0x0a1b2c3d  jo       123     m      Not found\n0x9f55bbfd  jo       rpi     m      Not found',
    },
  ])('$label', ({ rows, out }) => {
    expect(renderTable(HEAD, rows)).toBe(out);
  });

  it('aligns float columns on the decimal point with Python g formatting', () => {
    expect(renderTable(['A'], [['1.50'], ['10.25'], ['3']])).toBe('    A\n-----\n 1.5\n10.25\n 3');
  });

  it.each([
    ['1.50', '1.5'],
    ['1e5', '100000'],
    ['1234567.0', '1.23457e+06'],
    ['0.0001', '0.0001'],
    ['0.00001', '1e-05'],
    ['inf', 'inf'],
    ['3', '3'],
  ])('pythonG(%s) = %s', (input, output) => {
    expect(pythonG(input)).toBe(output);
  });
});
