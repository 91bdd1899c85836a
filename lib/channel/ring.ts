/** A growable FIFO ring: O(1) push and shift (Array#shift is O(n) once arrays get large). */
export class Ring<T> {
  #slots: (T | undefined)[];
  #head = 0;
  #length = 0;

  constructor(capacity: number) {
    this.#slots = new Array<T | undefined>(powerOfTwoAtLeast(capacity)).fill(undefined);
  }

  get length(): number {
    return this.#length;
  }

  push(value: T): void {
    if (this.#length === this.#slots.length) this.#grow();
    this.#slots[(this.#head + this.#length) & (this.#slots.length - 1)] = value;
    this.#length++;
  }

  /** The caller checks `length` first: shifting an empty ring returns `undefined` typed as `T`. */
  shift(): T {
    const slots = this.#slots;
    const value = slots[this.#head] as T;
    slots[this.#head] = undefined; // let the value be collected once it is taken
    this.#head = (this.#head + 1) & (slots.length - 1);
    this.#length--;
    return value;
  }

  clear(): void {
    this.#slots.fill(undefined);
    this.#head = 0;
    this.#length = 0;
  }

  #grow(): void {
    const old = this.#slots;
    const slots = new Array<T | undefined>(old.length * 2).fill(undefined);
    for (let i = 0; i < this.#length; i++) slots[i] = old[(this.#head + i) & (old.length - 1)];
    this.#slots = slots;
    this.#head = 0;
  }
}

function powerOfTwoAtLeast(n: number): number {
  let capacity = 4;
  while (capacity < n) capacity *= 2;
  return capacity;
}
