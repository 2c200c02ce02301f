import { describe, expect, it } from 'vitest';
import { parseModelCard } from '../../server/formats/model-card';

describe('model card front matter', () => {
  it('reads the fields the registry uses and keeps the rest', () => {
    const card = parseModelCard('---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\nlibrary_name: peft\nlicense: apache-2.0\ntags: [medical, lora]\ndatasets:\n  - pubmed_qa\nlanguage: en\ndomain: medical\nextra: 3\n---\n# Title\n');
    expect(card.errors).toEqual([]);
    expect(card.warnings).toEqual([]);
    expect(card.metadata).toMatchObject({
      baseModel: ['HuggingFaceTB/SmolLM2-135M-Instruct'], libraryName: 'peft', license: 'apache-2.0', tags: ['medical', 'lora'],
      datasets: ['pubmed_qa'], language: ['en'], domain: 'medical', raw: { extra: 3 },
    });
    expect(card.body).toBe('# Title\n');
  });

  it('accepts a BOM and CRLF line ends', () => {
    const card = parseModelCard('\uFEFF---\r\nlicense: mit\r\n---\r\nbody');
    expect(card.metadata.license).toBe('mit');
    expect(card.body).toBe('body');
  });

  it('warns when there is no front matter or the library is not PEFT', () => {
    expect(parseModelCard('# Just Markdown').warnings[0]).toMatch(/no YAML front matter/);
    expect(parseModelCard('---\nlibrary_name: transformers\n---\n').warnings[0]).toMatch(/set library_name: peft/);
  });

  it('names the line of malformed YAML and the field of the wrong type', () => {
    expect(parseModelCard('---\nlicense: mit\ntags: [a, b\n---\n').errors[0]).toMatch(/not valid YAML/);
    expect(parseModelCard('---\ntags: {a: 1}\n---\n').errors[0]).toMatch(/tags must be a string or a list of strings/);
    expect(parseModelCard('---\n- a\n- b\n---\n').errors[0]).toMatch(/must be a YAML mapping/);
  });

  it('refuses alias bombs instead of expanding them', () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 12; i += 1) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill('*' + String.fromCharCode(96 + i)).join(',')}]`);
    const card = parseModelCard(`---\n${lines.join('\n')}\n---\n`);
    expect(card.errors.length).toBe(1);
  });
});
