#!/usr/bin/env node
// `rpi-sim` on the PATH: the bundled @iot-tofu/rpi-sim bin runs when imported.
import '../node_modules/@iot-tofu/rpi-sim/dist/bin.js';
