/**
 * A small seeded generator (xoshiro128**) whose whole state is four uint32 words, so a trainer can
 * save it in a checkpoint and resume with exactly the same draws.
 */
export type RngState = readonly [number, number, number, number];

export class Rng {
  private state: Uint32Array;

  constructor(seed: number | RngState) {
    this.state = new Uint32Array(4);
    if (typeof seed === 'number') {
      // splitmix32 spreads a small seed over the four words (xoshiro must not start at zero).
      let x = seed >>> 0;
      for (let i = 0; i < 4; i++) {
        x = (x + 0x9e3779b9) >>> 0;
        let z = x;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
        this.state[i] = (z ^ (z >>> 16)) >>> 0;
      }
    } else {
      this.state.set(seed);
    }
  }

  /** A uint32. */
  nextUint32(): number {
    const s = this.state;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [min, max] (both included). */
  integer(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Rng.pick: no items');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** A 32-bit seed for a derived stream (e.g. the sampler's Philox seed of a step). */
  fork(): number {
    return this.nextUint32();
  }

  getState(): RngState {
    return [this.state[0]!, this.state[1]!, this.state[2]!, this.state[3]!];
  }
}

function rotl(value: number, bits: number): number {
  return ((value << bits) | (value >>> (32 - bits))) >>> 0;
}
