//! The cm predictor: the probability of each next bit of a byte stream,
//! from context models, a match model, mixers and SSE. Integer only, so an
//! encoder and a decoder on any machine compute the same probabilities.
//!
//! docs/CM.md describes it for reimplementation; every constant here is
//! part of a payload version (1, 2 or 3), and the golden tests in
//! `super::tests` guard against changing one by accident.
//!
//! Version 2 adds, for structured text such as logs: a field context (the
//! separators seen on the line and the bytes since the last one), a match
//! model that keeps its place through a few mispredicted bytes (a changed
//! counter in an otherwise repeated line), a mixer weight set for such a
//! recovering match, and an APM in the match model's confidence context.
//!
//! Version 3 follows each line's fields: contexts and a column model on
//! the byte at the same offset of the same field in the previous line and
//! in the last line with the same key (first non-empty field), and mixers
//! that leave their weights after a small error.

use super::matcher::{expected_bit, signed_inputs, MatchModel};
use super::mixer::{Mixer, ONE};
use super::slots::Slots;
use super::state::{self, entry, train, StateMap, StateTable};
use crate::mix::mixer::Apm;
use crate::mix::squash::squash;
use crate::mix::squash::stretch;

/// Hashed context models: orders 1-6 and 8, the word, the word pair, and
/// the sparse context of the two bytes before the last; version 2 adds the
/// field context, version 3 four line and field contexts.
const HASHED: usize = 15;
const HASHED_V2: usize = 11;
const HASHED_V1: usize = 10;
/// Mixer inputs at most: the hashed models, order 0, two from the match
/// model, (version 3) two from the column model, and a bias.
const INPUTS: usize = HASHED + 8;
/// (Version 3.) Errors (in 1/65536) too small to train the mixers on.
const MIXER_SKIP: i32 = 1024;
/// (Version 3.) Field starts recorded per line at most.
const MAX_FIELDS: usize = 4096;
/// (Version 3.) Column model confidence slots: agreement so far in the field
/// (2) x run of agreeing bytes (16) x predicted bit (2).
const COLUMN_SLOTS: usize = 2 * 16 * 2;
/// (Version 3.) Entries of the table of lines by key.
const KEY_LINES: usize = 1 << 12;

/// (Versions 2 and 3.) The bytes that end a field.
#[inline]
fn is_separator(b: u8) -> bool {
    matches!(
        b,
        b' ' | b',' | b':' | b'"' | b'[' | b']' | b'{' | b'}' | b'=' | b'\t' | b';'
    )
}

/// 32-bit mix of two words.
#[inline]
fn mix2(a: u32, b: u32) -> u32 {
    let x = (u64::from(a) << 32 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x >> 32) as u32
}

/// (Version 3.) A column model: the byte a line above predicts, behind a
/// leading 1, while it agrees with the bits coded so far (0 otherwise),
/// its learnt confidence per slot (whether the field so far matched, the
/// run of agreeing bytes, the predicted bit), and the slot in use.
#[derive(Clone)]
struct ColumnModel {
    expected: u32,
    hits: Vec<u32>,
    slot: usize,
}

impl ColumnModel {
    fn new(v3: bool) -> ColumnModel {
        ColumnModel {
            expected: 0,
            hits: vec![entry(32768); if v3 { COLUMN_SLOTS } else { 0 }],
            slot: 0,
        }
    }

    /// The inputs for the next bit: the learnt confidence and a vote
    /// growing with the run `run`, signed by the predicted bit; zeros
    /// when it predicts nothing.
    fn predict(&mut self, c0: u32, bitpos: u32, field_eq: bool, run: u32, out: &mut [i32]) {
        let Some(bit) = expected_bit(self.expected, c0, bitpos) else {
            self.expected = 0;
            out[..2].fill(0);
            return;
        };
        self.slot = (usize::from(field_eq) * 16 + run.min(15) as usize) * 2 + bit as usize;
        let st = stretch(self.hits[self.slot] >> 16);
        signed_inputs(bit, st, (run.min(16) as i32) * 16, out);
    }

    fn update(&mut self, c0: u32, bitpos: u32, bit: u32) {
        if let Some(e) = expected_bit(self.expected, c0, bitpos) {
            train(&mut self.hits[self.slot], u32::from(e == bit), 1023);
        }
    }
}

#[derive(Clone)]
pub struct Predictor {
    /// The payload version whose predictor this is (1, 2 or 3).
    version: u8,
    /// Hashed models in use, and the mixer inputs that makes.
    hashed: usize,
    inputs: usize,
    st: &'static StateTable,
    /// Every byte coded so far (or primed).
    hist: Vec<u8>,
    /// The current byte's bits behind a leading 1, and their count.
    c0: u32,
    bitpos: u32,
    /// The last four bytes (the latest in the low byte), and the four
    /// before them.
    c4: u32,
    c8: u32,
    /// Hash of the current word (letters, case-folded; 0 between words)
    /// and of the word before it.
    word: u32,
    word1: u32,
    /// (Version 2.) Field structure of the line: separators seen since the line began,
    /// and a hash of the bytes since the last separator.
    field: u32,
    token: u32,
    /// (Version 3.) The line structure: where the current line begins in
    /// `hist`, where each of its fields begins, and the same for the line
    /// before it.
    line_start: usize,
    fields: Vec<u32>,
    prev_fields: Vec<u32>,
    /// (Version 3.) The byte "above" the next one: in the previous line, at
    /// the same offset into the same field (`above_ok` when there is one),
    /// the byte after it, whether the current field so far equals the
    /// previous line's, how many bytes in a row agreed with the bytes
    /// above, and a hash of the line's first non-empty field.
    above: u32,
    above1: u32,
    above_ok: bool,
    field_eq: bool,
    above_run: u32,
    line_key: u32,
    /// (Version 3.) The column model on the byte above.
    col: ColumnModel,
    /// (Version 3.) The last line with the same key: per key hash, one
    /// past where the last line with that key began (0: none); that
    /// line's field starts and end (its newline), and the byte in it at the
    /// next byte's field and offset (`key_ok` when there is one), and
    /// whether the current field so far equals that line's.
    key_lines: Vec<u32>,
    key_fields: Vec<u32>,
    key_end: usize,
    key_above: u32,
    key_ok: bool,
    key_eq: bool,
    key_run: u32,
    /// (Version 3.) The column model on the key line's byte.
    key_col: ColumnModel,
    /// Per hashed model: the context hash of the current byte, the offset
    /// of the current nibble's bucket, and of the current bit's slot.
    ctx: [u32; HASHED],
    bucket: [usize; HASHED],
    slot: [usize; HASHED],
    slots: Vec<Slots>,
    maps: Vec<StateMap>,
    /// Order 0: a direct probability per partial byte.
    o0: Vec<u32>,
    matcher: MatchModel,
    x: [i32; INPUTS],
    mixers: [Mixer; 3],
    sets: [usize; 3],
    out: [i32; 4],
    final_mixer: Mixer,
    apm_c0: Apm,
    apm_c1: Apm,
    apm_c2: Apm,
    /// (Version 2.) In the match model's confidence context.
    apm_m: Apm,
    pr: u32,
}

impl Predictor {
    /// The predictor of payload `version` (1, 2 or 3), sized for blocks of up
    /// to `block_len` bytes.
    pub fn new(block_len: usize, version: u8) -> Predictor {
        debug_assert!((1..=3).contains(&version));
        let v2 = version >= 2;
        let v3 = version >= 3;
        let hashed = match version {
            1 => HASHED_V1,
            2 => HASHED_V2,
            _ => HASHED,
        };
        let inputs = hashed + if v3 { 8 } else { 4 };
        let bits = (block_len.max(1) * 2)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(10, 17);
        let mbits = block_len
            .max(1)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(10, 18);
        let skip = if v3 { MIXER_SKIP } else { 0 };
        let mut p = Predictor {
            version,
            hashed,
            inputs,
            st: state::table(),
            hist: Vec::with_capacity(block_len),
            c0: 1,
            bitpos: 0,
            c4: 0,
            c8: 0,
            word: 0,
            word1: 0,
            field: 0,
            token: 0,
            line_start: 0,
            fields: vec![0],
            prev_fields: Vec::new(),
            above: 0,
            above1: 0,
            above_ok: false,
            field_eq: true,
            above_run: 0,
            line_key: 0,
            col: ColumnModel::new(v3),
            key_lines: vec![0; if v3 { KEY_LINES } else { 0 }],
            key_fields: Vec::new(),
            key_end: 0,
            key_above: 0,
            key_ok: false,
            key_eq: true,
            key_run: 0,
            key_col: ColumnModel::new(v3),
            ctx: [0; HASHED],
            bucket: [0; HASHED],
            slot: [0; HASHED],
            slots: (0..hashed).map(|_| Slots::new(bits)).collect(),
            maps: (0..hashed).map(|_| StateMap::new(1, 1023)).collect(),
            o0: vec![entry(32768); 256],
            matcher: MatchModel::new(mbits, v2),
            x: [0; INPUTS],
            mixers: [
                Mixer::new(inputs, if v2 { 5 } else { 4 } * (hashed + 1), ONE / 4, 32),
                Mixer::new(inputs, 256, ONE / 4, 32),
                Mixer::new(inputs, 256, ONE / 4, 32),
            ]
            .map(|m| m.skipping(skip)),
            sets: [0; 3],
            out: [0; 4],
            final_mixer: Mixer::new(4, 8, ONE / 3, 10).skipping(skip),
            apm_c0: Apm::new(256, 7),
            apm_c1: Apm::new(1 << 16, 6),
            apm_c2: Apm::new(1 << 14, 6),
            apm_m: Apm::new(if v2 { 512 } else { 1 }, 7),
            pr: 32768,
        };
        p.begin_byte();
        p.begin_nibble();
        p.predict();
        p
    }

    /// Learns `bytes` as if they had been coded just before the block,
    /// without coding them: a dictionary the block's contexts and matches
    /// may then use. Clone the primed predictor for each block.
    pub fn prime(&mut self, bytes: &[u8]) {
        self.hist.reserve(bytes.len());
        for &byte in bytes {
            for i in (0..8).rev() {
                self.update(u32::from(byte >> i) & 1);
            }
        }
    }

    /// The probability (16-bit, `1..=65535`) that the next bit is 1.
    #[inline]
    pub fn p(&self) -> u32 {
        self.pr
    }

    /// Learns the coded `bit` and prepares the next prediction.
    pub fn update(&mut self, bit: u32) {
        for i in 0..self.hashed {
            let at = self.slot[i];
            self.maps[i].update(bit);
            let s = self.slots[i].get(at);
            self.slots[i].set(at, self.st.next(s, bit));
        }
        train(&mut self.o0[self.c0 as usize], bit, 255);
        self.matcher.update(self.c0, self.bitpos, bit);
        if self.version >= 3 {
            self.col.update(self.c0, self.bitpos, bit);
            self.key_col.update(self.c0, self.bitpos, bit);
        }
        let x = &self.x[..self.inputs];
        for m in &mut self.mixers {
            m.update(x, bit);
        }
        self.final_mixer.update(&self.out, bit);
        self.apm_c0.update(bit);
        self.apm_c1.update(bit);
        self.apm_c2.update(bit);
        if self.version >= 2 {
            self.apm_m.update(bit);
        }

        self.c0 = (self.c0 << 1) | bit;
        self.bitpos += 1;
        if self.bitpos == 8 {
            let byte = self.c0 as u8;
            self.hist.push(byte);
            self.c8 = (self.c8 << 8) | (self.c4 >> 24);
            self.c4 = (self.c4 << 8) | u32::from(byte);
            if byte.is_ascii_alphabetic() {
                self.word = mix2(self.word, u32::from(byte.to_ascii_lowercase()));
            } else if self.word != 0 {
                self.word1 = self.word;
                self.word = 0;
            }
            if self.version >= 3 {
                self.end_byte_v3(byte);
            }
            match byte {
                _ if self.version < 2 => {}
                b'\n' => {
                    self.field = 0;
                    self.token = 0;
                }
                b' ' | b',' | b':' | b'"' | b'[' | b']' | b'{' | b'}' | b'=' | b'\t' | b';' => {
                    self.field += 1;
                    self.token = u32::from(byte);
                }
                _ => self.token = mix2(self.token, u32::from(byte)),
            }
            self.c0 = 1;
            self.bitpos = 0;
            self.matcher.end_byte(&self.hist);
            self.begin_byte();
        }
        if self.bitpos == 0 || self.bitpos == 4 {
            self.begin_nibble();
        }
        self.predict();
    }

    /// (Version 3.) Follows the line and field structure past `byte` (just
    /// appended to `hist`; `field` and `token` not yet advanced past it).
    fn end_byte_v3(&mut self, byte: u8) {
        let agreed = self.above_ok && u32::from(byte) == self.above;
        self.field_eq &= agreed;
        let key_agreed = self.key_ok && u32::from(byte) == self.key_above;
        self.key_eq &= key_agreed;
        self.key_run = if key_agreed { self.key_run + 1 } else { 0 };
        self.above_run = if agreed { self.above_run + 1 } else { 0 };
        let n = self.hist.len();
        match byte {
            b'\n' => {
                std::mem::swap(&mut self.fields, &mut self.prev_fields);
                self.fields.clear();
                self.fields.push(n as u32);
                self.line_start = n;
                self.field_eq = true;
                self.line_key = 0;
                self.key_fields.clear();
                self.key_eq = true;
            }
            b' ' | b',' | b':' | b'"' | b'[' | b']' | b'{' | b'}' | b'=' | b'\t' | b';' => {
                if self.fields.len() < MAX_FIELDS {
                    self.fields.push(n as u32);
                }
                self.field_eq = true;
                self.key_eq = true;
                if self.line_key == 0 && self.token > 255 {
                    self.line_key = self.token;
                    self.find_key_line();
                }
            }
            _ => {}
        }
    }

    /// (Version 3.) Finds the last line with the current line's key, and
    /// its field starts; records the current line as the key's last.
    fn find_key_line(&mut self) {
        let k = (mix2(self.line_key, 0x4B45_5931) as usize) & (KEY_LINES - 1);
        let start = self.key_lines[k] as usize;
        self.key_lines[k] = self.line_start as u32 + 1;
        self.key_fields.clear();
        if start == 0 || start > self.line_start {
            return;
        }
        let mut i = start - 1;
        self.key_fields.push(i as u32);
        while i < self.line_start && self.hist[i] != b'\n' {
            if is_separator(self.hist[i]) && self.key_fields.len() < MAX_FIELDS {
                self.key_fields.push(i as u32 + 1);
            }
            i += 1;
        }
        self.key_end = i;
    }

    /// (Version 3.) Finds the byte above the next one (see the fields).
    fn find_above(&mut self) {
        let n = self.hist.len();
        let f = self.fields.len() - 1;
        let at = self
            .prev_fields
            .get(f)
            .map(|&s| s as usize + (n - self.fields[f] as usize));
        match at {
            Some(at) if at < self.line_start => {
                self.above_ok = true;
                self.above = u32::from(self.hist[at]);
                self.above1 = if at + 1 < self.line_start {
                    u32::from(self.hist[at + 1])
                } else {
                    0
                };
            }
            _ => {
                self.above_ok = false;
                self.above = 0;
                self.above1 = 0;
            }
        }
        self.col.expected = if self.above_ok { self.above | 256 } else { 0 };
        let at = self
            .key_fields
            .get(f)
            .map(|&s| s as usize + (n - self.fields[f] as usize));
        match at {
            Some(at) if at < self.key_end => {
                self.key_ok = true;
                self.key_above = u32::from(self.hist[at]);
            }
            _ => {
                self.key_ok = false;
                self.key_above = 0;
            }
        }
        self.key_col.expected = if self.key_ok { self.key_above | 256 } else { 0 };
    }

    /// The context hashes of the next byte.
    fn begin_byte(&mut self) {
        if self.version >= 3 {
            self.find_above();
        }
        let (c4, c8) = (self.c4, self.c8);
        let word = if self.word == 0 {
            self.word1
        } else {
            self.word
        };
        let ctx = [
            c4 & 0xFF,
            c4 & 0xFFFF,
            c4 & 0xFF_FFFF,
            c4,
            mix2(c4, c8 & 0xFF),
            mix2(c4, c8 & 0xFFFF),
            mix2(c4, c8),
            mix2(word, c4 & 0xFF),
            mix2(self.word, self.word1),
            c4 & 0xFF_FF00,
            mix2(self.field.min(255), self.token),
            mix2(
                self.above | u32::from(self.field_eq) << 8 | u32::from(self.above_ok) << 9,
                c4 & 0xFF,
            ),
            mix2(
                self.above | self.above1 << 8 | u32::from(self.field_eq) << 16,
                self.token,
            ),
            mix2(self.line_key, mix2(self.field.min(1023), self.token)),
            mix2(
                self.key_above | u32::from(self.key_eq) << 8 | u32::from(self.key_ok) << 9,
                mix2(c4 & 0xFFFF, self.above),
            ),
        ];
        let hashed = self.hashed;
        for (i, (h, c)) in self.ctx[..hashed].iter_mut().zip(ctx).enumerate() {
            *h = mix2(c, i as u32 + 1);
        }
    }

    fn begin_nibble(&mut self) {
        let c0 = self.c0;
        let h: [u32; HASHED] = std::array::from_fn(|i| mix2(self.ctx[i], c0));
        let h = &h[..self.hashed];
        for (slots, &h) in self.slots.iter().zip(h) {
            slots.prefetch(h);
        }
        for ((bucket, slots), &h) in self.bucket.iter_mut().zip(&mut self.slots).zip(h) {
            *bucket = slots.find(h);
        }
    }

    fn predict(&mut self) {
        let c0 = self.c0 as usize;
        let c1 = (self.c4 & 0xFF) as usize;
        let h2 = (mix2(self.c4 & 0xFFFF, self.c0) >> 18) as usize;
        self.apm_c1.prefetch(c0 | c1 << 8);
        self.apm_c2.prefetch(h2);
        let j = self.bitpos & 3;
        let node = ((1 << j) | (self.c0 & ((1 << j) - 1))) as usize;
        let mut known = 0;
        let hashed = self.hashed;
        for i in 0..hashed {
            let at = self.bucket[i] + node;
            self.slot[i] = at;
            let s = self.slots[i].get(at);
            known += usize::from(s != 0);
            self.x[i] = stretch(self.maps[i].p(0, s));
        }
        self.x[hashed] = stretch(self.o0[self.c0 as usize] >> 16);
        self.matcher
            .predict(self.c0, self.bitpos, &mut self.x[hashed + 1..hashed + 3]);
        self.x[hashed + 3] = 256;
        if self.version >= 3 {
            let mut col = [0; 2];
            self.col.predict(
                self.c0,
                self.bitpos,
                self.field_eq,
                self.above_run,
                &mut col,
            );
            self.x[hashed + 4] = col[0];
            self.x[hashed + 5] = col[1];
            self.key_col
                .predict(self.c0, self.bitpos, self.key_eq, self.key_run, &mut col);
            self.x[hashed + 6] = col[0];
            self.x[hashed + 7] = col[1];
        }

        let len = self.matcher.len();
        let strength = match len {
            _ if self.version >= 2 && self.matcher.recovering() => 4,
            0 => 0,
            1..=15 => 1,
            16..=31 => 2,
            _ => 3,
        };
        self.sets = [strength * (hashed + 1) + known, self.c0 as usize, c1];
        let x = &self.x[..self.inputs];
        for k in 0..3 {
            self.out[k] = self.mixers[k].mix(x, self.sets[k]);
        }
        self.out[3] = 256;
        let sm = self.final_mixer.mix(&self.out, self.bitpos as usize);
        let pm = squash(sm);

        let a0 = self.apm_c0.refine_stretched(sm, c0);
        let a1 = self.apm_c1.refine_stretched(sm, c0 | c1 << 8);
        let a2 = self.apm_c2.refine_stretched(sm, h2);
        self.pr = if self.version >= 2 {
            let am = self.apm_m.refine_stretched(
                sm,
                self.matcher.context() * 2 + usize::from(self.bitpos == 0),
            );
            (pm + a0 + 2 * a1 + 2 * a2 + 2 * am) / 8
        } else {
            (2 * pm + a0 + 2 * a1 + 3 * a2) / 8
        }
        .clamp(1, 65535);
    }
}
