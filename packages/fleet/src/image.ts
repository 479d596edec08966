import type { ImportContext } from './import.js';
import { FleetError } from './errors.js';

export async function importImage(image: string, _context: ImportContext): Promise<void> {
  throw new FleetError('IMPORT_FAILED', `importing images (${image}) is being implemented`);
}
