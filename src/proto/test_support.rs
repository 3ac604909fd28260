//! What the protocol parsers' tests share: hex literals of captured payloads, and the seeded
//! mutations their never-panic tests feed the parsers.

/// Bytes of a hex string (the tests' payload literals are copied from captures as hex).
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or_default())
        .collect()
}

/// xorshift64: a seeded, dependency-free sequence, so a failing mutation is reproducible.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// An index below `len` (which must not be 0).
    pub fn below(&mut self, len: usize) -> usize {
        (self.next() % len as u64) as usize
    }

    /// Overwrites up to `most - 1` random bytes of `p`: with a probability of `specials.len()` in
    /// `out_of`, by one of the `specials` (the bytes a parser splits on), else by a random byte.
    pub fn mutate(&mut self, p: &mut [u8], most: u64, specials: &[u8], out_of: u64) {
        if p.is_empty() {
            return;
        }
        for _ in 0..(self.next() % most) {
            let i = self.below(p.len());
            let pick = (self.next() % out_of) as usize;
            let byte = match specials.get(pick) {
                Some(&b) => b,
                None => self.next() as u8,
            };
            if let Some(at) = p.get_mut(i) {
                *at = byte;
            }
        }
    }
}
