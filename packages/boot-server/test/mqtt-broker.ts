import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type MqttClient } from 'mqtt';
import { stopProcess, which } from '@iot-tofu/test-kit';

/**
 * A real mosquitto on a loopback port for one test file: no persistence (a restart loses every
 * retained message, so what reappears was published again), anonymous clients allowed.
 */
export class Mosquitto {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'iot-tofu-mqtt-'));
  output = '';

  constructor(readonly port: number) {
    writeFileSync(join(this.dir, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn(which('mosquitto')!, ['-c', join(this.dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    const deadline = Date.now() + 10_000;
    while (!(await accepts(this.port))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`mosquitto did not start: ${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child) await stopProcess(child);
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A subscriber that records every message (retained ones flagged) on the given filters. */
export class Recorder {
  readonly messages: Array<{ topic: string; payload: string; retain: boolean }> = [];
  private constructor(private readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => this.messages.push({ topic, payload: payload.toString(), retain: packet.retain }));
  }

  static async subscribe(url: string, filters: string[]): Promise<Recorder> {
    const client = await connectAsync(url);
    const recorder = new Recorder(client);
    await client.subscribeAsync(filters, { qos: 1 });
    return recorder;
  }

  on(topic: string): Array<{ payload: string; retain: boolean }> {
    return this.messages.filter((m) => m.topic === topic).map(({ payload, retain }) => ({ payload, retain }));
  }

  last(topic: string): string | undefined {
    return this.on(topic).at(-1)?.payload;
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

function connectAsync(url: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = connect(url, { reconnectPeriod: 0, connectTimeout: 5000 });
    client.once('connect', () => resolve(client));
    client.once('error', (error) => {
      client.end(true);
      reject(error);
    });
  });
}
