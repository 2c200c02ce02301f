import { describe, expect, it } from 'vitest';
import { taskBaselines } from '../../server/services/evaluations';

const item = (choices: string[], gold: number) => JSON.stringify({ id: 'x', prompt: 'p', choices, gold });

describe('task baselines', () => {
  it('computes random and majority accuracy', () => {
    const text = [item(['yes', 'no', 'maybe'], 0), item(['yes', 'no', 'maybe'], 0), item(['yes', 'no', 'maybe'], 1), item(['a', 'b'], 1)].join('\n') + '\n';
    const { itemCount, baselines } = taskBaselines(text);
    expect(itemCount).toBe(4);
    expect(baselines.random).toBeCloseTo((1 / 3 + 1 / 3 + 1 / 3 + 1 / 2) / 4, 10);
    expect(baselines.majority).toEqual({ answer: 'yes', accuracy: 0.5 });
  });

  it('rejects a gold index outside the choices, naming the line', () => {
    expect(() => taskBaselines([item(['a', 'b'], 0), item(['a', 'b'], 2)].join('\n'))).toThrow('task line 2: `gold` 2 must index one of the 2 choices');
  });

  it('rejects an empty task file', () => {
    expect(() => taskBaselines('\n')).toThrow('the task file has no items');
  });
});
