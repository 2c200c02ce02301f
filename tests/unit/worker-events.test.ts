import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { workerEvent } from '../../server/contracts/worker-events';

const fixture = fs.readFileSync('tests/fixtures/worker-events.jsonl', 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));

describe('worker event contract', () => {
  it('accepts every line of the shared fixture', () => {
    for (const event of fixture) expect(workerEvent.safeParse(event).error?.issues ?? []).toEqual([]);
  });

  it('covers every event type', () => {
    expect(new Set(fixture.map((e: { type: string }) => e.type))).toEqual(new Set(['started', 'progress', 'checkpoint', 'metric', 'artifact', 'log', 'finished', 'failed']));
  });

  it('rejects an unknown failure reason', () => {
    expect(workerEvent.safeParse({ type: 'failed', time: 1, reason: 'bored', message: 'x' }).success).toBe(false);
  });

  it('rejects a progress event without its loss', () => {
    expect(workerEvent.safeParse({ type: 'progress', time: 1, step: 1, totalSteps: 2, epoch: 0, learningRate: 0.1, tokensPerSecond: 5 }).success).toBe(false);
  });
});
