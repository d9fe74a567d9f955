import { describe, expect, it } from 'vitest';

import { extractAnswer, normaliseLatex, parseNumber, verifierNames, verifiers } from '../src/verifiers.js';

const gsm8kSolution =
  'Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72';

describe('extractAnswer', () => {
  it('reads the number after the last #### (gsm8k)', () => {
    expect(extractAnswer('gsm8k', gsm8kSolution)).toBe('72');
    expect(extractAnswer('gsm8k', 'first #### 3, then\n#### 1,234')).toBe('1,234');
    expect(extractAnswer('gsm8k', 'So she pays\n#### $18 dollars')).toBe('18');
    expect(extractAnswer('gsm8k', '#### -5')).toBe('-5');
    expect(extractAnswer('gsm8k', 'the answer is 72')).toBeNull();
    expect(extractAnswer('gsm8k', 'the answer is 72 ####')).toBeNull();
  });

  it('reads the last number (numeric), with signs, separators, decimals, fractions and %', () => {
    expect(extractAnswer('numeric', 'She has 3 apples and 1,234.5 pears.')).toBe('1,234.5');
    expect(extractAnswer('numeric', 'x = -7')).toBe('-7');
    expect(extractAnswer('numeric', 'we get 10-3=7')).toBe('7');
    expect(extractAnswer('numeric', 'the difference 5-3')).toBe('3');
    expect(extractAnswer('numeric', 'the share is 3/4')).toBe('3/4');
    expect(extractAnswer('numeric', 'it rose by 12.5%.')).toBe('12.5%');
    expect(extractAnswer('numeric', 'about .5 of it')).toBe('.5');
    expect(extractAnswer('numeric', 'no digits here')).toBeNull();
  });

  it('reads the last box with balanced braces (boxed), \\fbox too', () => {
    expect(extractAnswer('boxed', 'so $\\boxed{\\frac{1}{2}}$.')).toBe('\\frac{1}{2}');
    expect(extractAnswer('boxed', '\\boxed{1} then \\boxed{\\sqrt{\\frac{a}{b}}}')).toBe('\\sqrt{\\frac{a}{b}}');
    expect(extractAnswer('boxed', 'set \\boxed{\\{1, 2\\}}')).toBe('\\{1, 2\\}');
    expect(extractAnswer('boxed', 'then \\fbox{42}')).toBe('42');
    expect(extractAnswer('boxed', 'it is \\boxed 5$')).toBe('5');
    expect(extractAnswer('boxed', 'unclosed \\boxed{\\frac{1}{2}')).toBeNull();
    expect(extractAnswer('boxed', 'empty \\boxed{ }')).toBeNull();
    expect(extractAnswer('boxed', 'no box')).toBeNull();
  });

  it('reads the final answer after Answer:, else a box, else #### (exact)', () => {
    expect(extractAnswer('exact', 'thinking...\nAnswer: Paris')).toBe('Paris');
    expect(extractAnswer('exact', 'answer: no\n**Final Answer:** B')).toBe('B');
    expect(extractAnswer('exact', 'so \\boxed{B}')).toBe('B');
    expect(extractAnswer('exact', 'so\n#### B ')).toBe('B');
    expect(extractAnswer('exact', 'just text')).toBeNull();
    expect(extractAnswer('exact', 'Answer:   ')).toBeNull();
  });
});

describe('parseNumber and normaliseLatex', () => {
  it('reads whole strings as numbers', () => {
    expect(parseNumber('42')).toBe(42);
    expect(parseNumber(' -1,234.5 ')).toBe(-1234.5);
    expect(parseNumber('$18')).toBe(18);
    expect(parseNumber('3/4')).toBe(0.75);
    expect(parseNumber('\\frac{3}{4}')).toBe(0.75);
    expect(parseNumber('-\\dfrac12')).toBe(-0.5);
    expect(parseNumber('1/0')).toBeNull();
    expect(parseNumber('12 apples')).toBeNull();
    expect(parseNumber('1,23')).toBeNull();
    expect(parseNumber('x')).toBeNull();
  });

  it('normalises LaTeX lightly', () => {
    expect(normaliseLatex('$\\left( 1, \\dfrac{1}{2} \\right)$.')).toBe('(1,\\frac{1}{2})');
    expect(normaliseLatex('3\\!\\,\\tfrac{1}{4}')).toBe('3\\frac{1}{4}');
    expect(normaliseLatex('\\leftarrow')).toBe('\\leftarrow');
  });
});

describe('verifiers', () => {
  it('has one verifier per name', () => {
    expect(Object.keys(verifiers).sort()).toEqual([...verifierNames].sort());
  });

  it('gsm8k: compares the numbers after ####, from a bare answer or a whole solution', () => {
    const { gsm8k } = verifiers;
    expect(gsm8k('He needs 70+2 = 72.\n#### 72', '72')).toBe(1);
    expect(gsm8k('He needs 70+2 = 72.\n#### 72', gsm8kSolution)).toBe(1);
    expect(gsm8k('#### 72.0', '72')).toBe(1);
    expect(gsm8k('#### 1,234', '1234')).toBe(1);
    expect(gsm8k('#### $5', '5')).toBe(1);
    expect(gsm8k('#### 71', gsm8kSolution)).toBe(0);
    // The number must come after ####: a right number elsewhere scores 0.
    expect(gsm8k('The answer is 72.', '72')).toBe(0);
    expect(gsm8k('#### 72\nwait, actually\n#### 73', '72')).toBe(0);
  });

  it('numeric: compares the last number within a relative tolerance', () => {
    const { numeric } = verifiers;
    expect(numeric('So the total is 1,234 dollars.', '1234')).toBe(1);
    expect(numeric('Answer: 0.75', '3/4')).toBe(1);
    expect(numeric('The share is 3/4', '0.75')).toBe(1);
    expect(numeric('ratio 0.3333333334', '1/3')).toBe(1);
    expect(numeric('ratio 0.3334', '1/3')).toBe(0);
    expect(numeric('It grew by 50%', '50')).toBe(1);
    expect(numeric('It grew by 50%', '0.5')).toBe(1);
    expect(numeric('x = -3', '-3')).toBe(1);
    expect(numeric('x = -3', '3')).toBe(0);
    expect(numeric('10 - 3 = 7', '7')).toBe(1);
    expect(numeric('0', '0')).toBe(1);
    expect(numeric('#### 42', '#### 42')).toBe(1);
    expect(numeric('It is 42 or 43', '42')).toBe(0);
  });

  it('boxed: compares normalised LaTeX, and numbers numerically', () => {
    const { boxed } = verifiers;
    expect(boxed('Thus $\\boxed{\\dfrac{1}{2}}$.', '\\frac{1}{2}')).toBe(1);
    expect(boxed('Thus $\\boxed{\\frac12}$.', '0.5')).toBe(1);
    expect(boxed('\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}', '(3,\\frac{\\pi}{2})')).toBe(1);
    expect(boxed('\\boxed{\\sqrt{\\frac{a}{b}}}', '\\sqrt{\\frac{a}{b}}')).toBe(1);
    expect(boxed('\\fbox{10{,}000}', '10000')).toBe(1);
    expect(boxed('\\boxed{5.}', '5')).toBe(1);
    expect(boxed('\\boxed{2.50}', '2.5')).toBe(1);
    // A MATH solution as the answer: its last box is the answer.
    expect(boxed('\\boxed{12}', 'We add: $5+7=\\boxed{12}$.')).toBe(1);
    expect(boxed('\\boxed{\\frac{1}{3}}', '\\frac{1}{2}')).toBe(0);
    expect(boxed('the answer is 1/2', '\\frac{1}{2}')).toBe(0);
  });

  it('exact: compares the final answer after trimming and collapsing whitespace', () => {
    const { exact } = verifiers;
    expect(exact('Reasoning...\nAnswer:   New   York ', 'New York')).toBe(1);
    expect(exact('  New\n York ', 'New York')).toBe(1);
    expect(exact('Answer: new york', 'New York')).toBe(0);
    expect(exact('\\boxed{B}', 'B')).toBe(1);
    expect(exact('Answer: B is wrong', 'B')).toBe(0);
  });

  it('scores malformed completions 0 and never throws', () => {
    const junk = [
      '',
      '####',
      '#### ',
      '\\boxed{',
      '\\boxed{}}}}',
      '}{\\boxed',
      '\\fbox',
      'Answer:',
      '$$$$',
      '1/0',
      '9'.repeat(400),
      '-'.repeat(1000),
      '\\boxed{'.repeat(500),
      '\u0000\uffff\ud800',
      '1,2,3,,,4..5',
    ];
    for (const name of verifierNames) {
      for (const completion of junk) {
        expect(() => verifiers[name](completion, '42')).not.toThrow();
        expect(verifiers[name](completion, '42')).toBe(0);
      }
      // Not even on values that are not strings at all (e.g. from untyped JSON).
      expect(verifiers[name](undefined as unknown as string, '42')).toBe(0);
      expect(verifiers[name]('42', null as unknown as string)).toBe(0);
    }
  });
});
