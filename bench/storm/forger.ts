/**
 * A hostile host on the LAN (issue 19 item 7): DISCOVERs that look like Pi 4 bootloaders (Pi OUI
 * MAC, "PXEClient" vendor class, option 93/94/97 as a Pi sends them) and never fetch anything.
 * Run it inside a lab namespace only (it broadcasts).
 *   node --conditions=@iot-tofu/source --import tsx bench/storm/forger.ts \
 *     --count 200 [--rounds 1] [--interval-ms 4000] [--pattern repeat|rotate] [--first-index 1000]
 * `repeat`: every round re-sends the same keys (as waiting Pis would); `rotate`: every round new keys.
 * Prints one line per round ("round R: N DISCOVERs") and exits after the last; bounded to 5000
 * DISCOVERs per round and 30 rounds.
 */
import { parseArgs } from 'node:util';
import { behaviourFor, DhcpClientPort, encodePiDhcpRequest, piGuid, simulatedIdentities } from '@iot-tofu/rpi-sim';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '1' },
    'interval-ms': { type: 'string', default: '4000' },
    pattern: { type: 'string', default: 'repeat' },
    'first-index': { type: 'string', default: '1000' },
  },
});
const count = Math.min(5000, Math.max(1, Number(values.count)));
const rounds = Math.min(30, Math.max(1, Number(values.rounds)));
const intervalMs = Math.max(100, Number(values['interval-ms']));
const firstIndex = Number(values['first-index']);
const behaviour = behaviourFor('pi4');

const port = new DhcpClientPort();
await port.start();
for (let round = 0; round < rounds; round++) {
  const started = performance.now();
  const identities = simulatedIdentities(count, 'pi4', firstIndex + (values.pattern === 'rotate' ? round * count : 0));
  for (const [i, identity] of identities.entries()) {
    const xid = (0x0f000000 + round * 0x10000 + i) >>> 0;
    port.send(encodePiDhcpRequest({ identity, behaviour, xid, guid: piGuid(identity, behaviour) }));
  }
  process.stdout.write(`round ${round}: ${count} DISCOVERs\n`);
  if (round < rounds - 1) await new Promise((resolve) => setTimeout(resolve, Math.max(0, intervalMs - (performance.now() - started))));
}
// Let the last datagrams leave before the socket closes.
await new Promise((resolve) => setTimeout(resolve, 200));
port.close();
