/**
 * Renders rows exactly like Python tabulate's "simple" format with `headers="firstrow"` (what
 * upstream pxetools prints for --list; docs/pxetools-compat.md B1 item 25):
 * - cells are stripped; a column is as wide as max(widest cell, header length + 2)
 * - columns are joined by two spaces, a dash line follows the header, no trailing blanks
 * - text is left-aligned; a column whose every cell is a number is right-aligned (ints) or
 *   aligned on the decimal point (floats, printed with Python's "g" format)
 */

type ColumnType = 'int' | 'float' | 'text';

const INT = /^[+-]?\d+$/;
const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?:inf|nan|infinity)$/i;

function columnType(cells: readonly string[]): ColumnType {
  if (cells.length === 0) return 'text';
  if (cells.every((c) => INT.test(c))) return 'int';
  if (cells.every((c) => FLOAT.test(c))) return 'float';
  return 'text';
}

/** Python's format(float(x), 'g'): 6 significant digits, trailing zeros dropped, e+XX exponents. */
export function pythonG(text: string): string {
  const value = Number(
    text
      .toLowerCase()
      .replace(/^([+-]?)infinity$/, '$1Infinity')
      .replace(/^([+-]?)inf$/, '$1Infinity'),
  );
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  if (value === 0) return Object.is(value, -0) || text.trim().startsWith('-') ? '-0' : '0';
  const exponent = Math.floor(Math.log10(Math.abs(Number(value.toPrecision(6)))));
  if (exponent < -4 || exponent >= 6) {
    const [mantissa = '', exp = '0'] = value.toExponential(5).split('e');
    const trimmed = mantissa.includes('.') ? mantissa.replace(/0+$/, '').replace(/\.$/, '') : mantissa;
    const e = Number(exp);
    return `${trimmed}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  const fixed = value.toFixed(Math.max(0, 5 - exponent));
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

const width = (s: string) => [...s].length;

export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const columns = headers.map((_, i) => rows.map((r) => (r[i] ?? '').trim()));
  const types = columns.map(columnType);
  const formatted = columns.map((cells, i) => (types[i] === 'float' ? cells.map(pythonG) : cells));
  // Decimal alignment: pad the part after the point so the points line up.
  const aligned = formatted.map((cells, i) => {
    if (types[i] !== 'float') return cells;
    const decimals = cells.map((c) => (c.includes('.') ? c.length - c.indexOf('.') - 1 : -1));
    const maxDecimals = Math.max(...decimals);
    return cells.map((c, j) => {
      const d = decimals[j] ?? -1;
      return c + ' '.repeat(d === -1 ? (maxDecimals > 0 ? maxDecimals + 1 : 0) : maxDecimals - d);
    });
  });
  const widths = headers.map((h, i) => Math.max(width(h) + 2, ...(aligned[i] ?? []).map(width)));
  const pad = (s: string, w: number, right: boolean) => (right ? ' '.repeat(w - width(s)) + s : s + ' '.repeat(w - width(s)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => pad(c, widths[i] ?? 0, types[i] !== 'text'))
      .join('  ')
      .replace(/\s+$/, '');
  const out = [line(headers), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (let r = 0; r < rows.length; r++) out.push(line(headers.map((_, i) => aligned[i]?.[r] ?? '')));
  return out.join('\n');
}
