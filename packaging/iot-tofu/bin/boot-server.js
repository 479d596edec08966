#!/usr/bin/env node
// `boot-server` on the PATH: the bundled @iot-tofu/boot-server CLI (scripts/pack.mjs builds the package).
import { run } from '../node_modules/@iot-tofu/boot-server/dist/cli.js';

await run(process.argv);
