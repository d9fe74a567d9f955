/** Records as JSON lines, appended as they come, so a crash keeps everything up to it. */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import type { TrainerRecord } from './records.js';

export class RecordLog {
  constructor(
    readonly path: string,
    options: { append?: boolean } = {},
  ) {
    mkdirSync(dirname(path), { recursive: true });
    if (!options.append) writeFileSync(path, '');
  }

  append(record: TrainerRecord): void {
    appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }
}
