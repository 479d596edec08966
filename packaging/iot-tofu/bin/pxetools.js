#!/usr/bin/env node
// `pxetools` on the PATH: the bundled @iot-tofu/pxetools CLI runs when imported.
import '../node_modules/@iot-tofu/pxetools/dist/cli.js';
