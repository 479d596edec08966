// Turns ajv's validation errors into the one `{field, message}` a client can act on.

/** One entry of ajv's error list (fastify hands them over as `error.validation`). */
export interface ValidationIssue {
  keyword: string;
  instancePath?: string;
  schemaPath?: string;
  params?: Record<string, unknown>;
  message?: string;
}

/** `body/serial must match pattern` → the field name a client can act on. */
export function validationField(error: { instancePath?: string; params?: Record<string, unknown> }): string {
  const path = (error.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
  const extra = error.params?.missingProperty ?? error.params?.additionalProperty;
  if (typeof extra === 'string') return path ? `${path}.${extra}` : extra;
  return path;
}

/**
 * Picks the error a client can act on from ajv's list (allErrors): an unknown field first, then a
 * plain field error, and for "one of these sources" rules the alternatives spelled out.
 */
export function describeValidation(issues: readonly ValidationIssue[]): { field: string; message: string } {
  const unknownField = issues.find((i) => i.keyword === 'additionalProperties');
  if (unknownField) return { field: validationField(unknownField), message: 'unknown field' };
  const direct = issues.find((i) => i.keyword !== 'oneOf' && !(i.schemaPath ?? '').includes('/oneOf/'));
  if (direct) return { field: validationField(direct), message: direct.message ?? 'invalid' };
  const oneOf = issues.find((i) => i.keyword === 'oneOf');
  const branches = missingFieldsByBranch(issues);
  if (branches.size > 0 && oneOf) {
    const path = validationField({ instancePath: oneOf.instancePath ?? '' });
    const choices = [...branches.values()].map((fields) => fields.join(' + '));
    const field = path || [...new Set([...branches.values()].flat())].join('|');
    return { field, message: `give exactly one of: ${choices.join(', or ')}` };
  }
  const first = issues[0];
  return { field: first ? validationField(first) : '', message: first?.message ?? 'invalid' };
}

/** For a `oneOf` rule: the fields each alternative is missing, keyed by the alternative's index. */
function missingFieldsByBranch(issues: readonly ValidationIssue[]): Map<string, string[]> {
  const branches = new Map<string, string[]>();
  for (const issue of issues) {
    const branch = /\/oneOf\/(\d+)\/required$/.exec(issue.schemaPath ?? '')?.[1];
    const missing = issue.params?.missingProperty;
    if (branch !== undefined && typeof missing === 'string') branches.set(branch, [...(branches.get(branch) ?? []), missing]);
  }
  return branches;
}
