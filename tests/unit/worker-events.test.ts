import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { evaluationResult, workerEvent } from '../../server/contracts/worker-events';

const fixture = fs.readFileSync('tests/fixtures/worker-events.jsonl', 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));

describe('worker event contract', () => {
  it('accepts every line of the shared fixture', () => {
    for (const event of fixture) expect(workerEvent.safeParse(event).error?.issues ?? []).toEqual([]);
  });

  it('covers every event type', () => {
    expect(new Set(fixture.map((e: { type: string }) => e.type))).toEqual(new Set(['started', 'progress', 'checkpoint', 'metric', 'artifact', 'log', 'finished', 'failed']));
  });

  it('accepts the evaluation results of the fixture', () => {
    const evaluations = fixture.filter((e: { type: string; summary?: { results?: unknown } }) => e.type === 'finished' && e.summary?.results);
    expect(evaluations).toHaveLength(1);
    for (const result of evaluations[0].summary.results) expect(evaluationResult.safeParse(result).error?.issues ?? []).toEqual([]);
  });

  it('rejects an evaluation result without its harness version', () => {
    const [result] = fixture.find((e: { summary?: { results?: unknown } }) => e.summary?.results).summary.results;
    const { harnessVersion: _omitted, ...rest } = result;
    expect(evaluationResult.safeParse(rest).success).toBe(false);
  });

  it('rejects an unknown failure reason', () => {
    expect(workerEvent.safeParse({ type: 'failed', time: 1, reason: 'bored', message: 'x' }).success).toBe(false);
  });

  it('accepts evaluation progress in items without a loss', () => {
    expect(workerEvent.safeParse({ type: 'progress', time: 1, step: 3, totalSteps: 8, unit: 'items', subject: 'base' }).success).toBe(true);
  });

  it('rejects a progress event without its loss', () => {
    expect(workerEvent.safeParse({ type: 'progress', time: 1, step: 1, totalSteps: 2, epoch: 0, learningRate: 0.1, tokensPerSecond: 5 }).success).toBe(false);
  });
});
