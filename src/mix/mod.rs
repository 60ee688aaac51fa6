//! The transformer's predictions mixed with adaptive in-block models,
//! exactly.
//!
//! The transformer knows language in general but sees only its own 256-byte
//! chunk; a block also repeats itself (a novel's names, a bible's formulas,
//! a table's recurring fields). The [`Predictor`] codes each byte as eight
//! binary decisions, most significant bit first. For each decision it
//! gathers, in the logistic domain: the transformer's probability of the bit
//! (summed from its byte distribution), context counters of orders 1-6 and
//! 8 and of the current word and word pair ([`counters`]), a match model
//! ([`matcher`]) and a bias. Two gated linear mixers ([`mixer`]) weigh them,
//! learning online which to trust, and two adaptive probability maps refine
//! the result by the bits and the byte before. All arithmetic is integer,
//! so the encoder and the decoder compute identical probabilities on every
//! platform; only the
//! transformer's tables come from floating point, and the model contract
//! already makes those identical.
//!
//! **Coding order.** The predictor's state is shared by all chunks of a
//! block and is updated in the order the block is coded: wave by wave (a
//! wave is a run of consecutive chunks that a decoder advances in
//! lockstep), and inside a wave position by position, chunk by chunk. That
//! is the order in which a lockstep decoder learns the bytes, so the decoder
//! can rebuild every state the encoder had. Context models use only bytes of
//! the chunk itself (the previous chunk may not be decoded yet); the match
//! model uses any byte already coded.
//!
//! Every constant here is part of the llm payload format (version 2): a
//! change that alters any probability needs a new payload version, and the
//! golden test below guards against changing one by accident.

mod counters;
mod matcher;
pub(crate) mod mixer;
pub(crate) mod squash;

use crate::coder::range::{Decoder, Encoder};
use crate::coder::{CoderError, FreqTable, TOTAL};
use counters::{ContextModels, MODELS};
use matcher::MatchModel;
use mixer::{Apm, Mixer, WEIGHT_ONE};
use squash::stretch;

/// Mixer inputs: the transformer, the context orders, the match model, a
/// bias.
const INPUTS: usize = MODELS + 3;
const IN_MATCH: usize = MODELS + 1;
const IN_BIAS: usize = MODELS + 2;
/// Weight sets: match strength (4) x orders that know the context.
const SETS: usize = 4 * (MODELS + 1);
/// Second mixer's weight sets: the transformer's confidence (9) x bit
/// position (8).
const SETS2: usize = 9 * 8;

/// Codes one binary decision with a probability `p1` of a 1 (16-bit, in
/// `1..=65535`), returning the bit. The encoder's implementation knows the
/// bit; the decoder's finds it.
pub trait BitCoder {
    fn code(&mut self, p1: u32) -> Result<u32, CoderError>;
}

/// Encodes the bits of one byte, most significant first.
pub struct ByteEncoder<'a> {
    pub encoder: &'a mut Encoder,
    pub byte: u8,
    pub next: u32,
}

impl BitCoder for ByteEncoder<'_> {
    #[inline]
    fn code(&mut self, p1: u32) -> Result<u32, CoderError> {
        let bit = u32::from(self.byte >> (7 - self.next)) & 1;
        self.next += 1;
        let p0 = TOTAL - p1;
        if bit == 0 {
            self.encoder.encode(0, p0)?;
        } else {
            self.encoder.encode(p0, p1)?;
        }
        Ok(bit)
    }
}

impl BitCoder for Decoder<'_> {
    #[inline]
    fn code(&mut self, p1: u32) -> Result<u32, CoderError> {
        let p0 = TOTAL - p1;
        if self.target() < p0 {
            self.consume(0, p0)?;
            Ok(0)
        } else {
            self.consume(p0, p1)?;
            Ok(1)
        }
    }
}

/// The probability that the next bit is 1 under the transformer's byte
/// distribution `table` (256 symbols), given the byte's bits so far `c0`
/// (behind a leading 1, `bitpos` of them): the mass of the symbols whose
/// prefix continues with 1 over the mass of those with the prefix.
#[inline]
fn table_p1(table: &FreqTable, c0: u32, bitpos: u32) -> u32 {
    let width = 256usize >> bitpos;
    let lo = (c0 as usize - (1usize << bitpos)) * width;
    let (mid, hi) = (lo + width / 2, lo + width);
    let all = u64::from(table.cum(hi) - table.cum(lo));
    let ones = u64::from(table.cum(hi) - table.cum(mid));
    // Every symbol has frequency >= 1, so `all` > 0.
    ((ones << 16) / all).clamp(1, 65535) as u32
}

/// Block length a primed predictor's tables are sized for, whatever the
/// block's own length: one primed state serves every block.
pub const PRIMED_BLOCK_LEN: usize = 65536;

/// The adaptive state of one block being coded.
#[derive(Clone)]
pub struct Predictor {
    chunk_len: usize,
    /// A primed predictor's dictionary, cut into chunks (each padded to
    /// `chunk_len`), then the block, filled in as bytes are coded.
    data: Vec<u8>,
    /// Where the block starts in `data`: a whole number of chunks.
    offset: usize,
    /// Bytes known so far, per chunk of `data` (a dictionary chunk's are
    /// all its bytes).
    done: Vec<usize>,
    orders: ContextModels,
    matcher: MatchModel,
    mixer: Mixer,
    mixer2: Mixer,
    /// Refine the mixed probability by the byte so far, and by the byte so
    /// far and the previous byte.
    apm0: Apm,
    apm1: Apm,
}

impl Predictor {
    /// A predictor for a block of `block_len` bytes cut into chunks of
    /// `chunk_len`.
    pub fn new(block_len: usize, chunk_len: usize) -> Predictor {
        let chunk_len = chunk_len.max(1);
        // Start close to the transformer alone, the other inputs at a small
        // weight that the mixers raise where they help.
        let mut initial = [WEIGHT_ONE / 8; INPUTS];
        initial[0] = WEIGHT_ONE;
        Predictor {
            chunk_len,
            data: vec![0; block_len],
            offset: 0,
            done: vec![0; block_len.div_ceil(chunk_len)],
            orders: ContextModels::new(block_len),
            matcher: MatchModel::new(block_len, chunk_len),
            mixer: Mixer::new(INPUTS, SETS, &initial),
            mixer2: Mixer::new(INPUTS, SETS2, &initial),
            apm0: Apm::new(256, 5),
            apm1: Apm::new(256 * 257, 5),
        }
    }

    /// The in-block models primed with `dictionary` (llm payload version
    /// 6), for blocks cut into chunks of `chunk_len`; each block starts
    /// from a copy of it ([`Predictor::for_block`]). The dictionary, cut
    /// into chunks of `chunk_len` as a block is, is learnt by the context
    /// models and the match model as if it were coded ahead of the block,
    /// in order, chunk after chunk. The mixers and the adaptive
    /// probability maps start as they do unprimed: training them would
    /// need the transformer's predictions for the dictionary. The tables
    /// are sized as for a block of [`PRIMED_BLOCK_LEN`] bytes (the match
    /// model's for the dictionary and such a block), whatever the block's
    /// length, so one primed state serves every block.
    pub fn primed(dictionary: &[u8], chunk_len: usize) -> Predictor {
        let mut p = Predictor::new(PRIMED_BLOCK_LEN, chunk_len);
        let c = p.chunk_len;
        let dict_chunks = dictionary.len().div_ceil(c);
        let offset = dict_chunks * c;
        let mut data = vec![0; offset];
        data[..dictionary.len()].copy_from_slice(dictionary);
        p.data = data;
        p.offset = offset;
        p.done = vec![0; dict_chunks];
        p.matcher = MatchModel::new(offset + PRIMED_BLOCK_LEN, c);
        p.matcher.resize_chunks(dict_chunks);
        for (k, chunk) in dictionary.chunks(c).enumerate() {
            for (pos, &byte) in chunk.iter().enumerate() {
                p.learn_byte(k, pos, byte);
            }
        }
        p
    }

    /// A copy of this primed state ([`Predictor::primed`]) for a block of
    /// `block_len` bytes.
    pub fn for_block(&self, block_len: usize) -> Predictor {
        let mut p = self.clone();
        let chunks = self.offset / self.chunk_len + block_len.div_ceil(self.chunk_len);
        p.data.resize(self.offset + block_len, 0);
        p.done.resize(chunks, 0);
        p.matcher.resize_chunks(chunks);
        p
    }

    /// The chunk length this predictor codes with.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    /// Learns `byte` at `pos` of chunk `chunk` of `data` without coding it:
    /// the context models' and match model's updates of
    /// [`Predictor::code_byte`], in the same order.
    fn learn_byte(&mut self, chunk: usize, pos: usize, byte: u8) {
        self.begin_byte(chunk, pos);
        let mut x = [0i32; MODELS];
        let mut c0 = 1u32;
        for bitpos in 0..8 {
            let bit = u32::from(byte >> (7 - bitpos)) & 1;
            self.orders.predict(c0, &mut x);
            self.matcher.predict(c0, bitpos);
            self.orders.update(bit);
            self.matcher.update(bit);
            c0 = (c0 << 1) | bit;
        }
        self.done[chunk] += 1;
        self.matcher.end_byte(chunk, pos, &self.data);
    }

    /// Sets the context models' and the match model's contexts for the
    /// byte at `pos` of chunk `chunk` of `data`.
    fn begin_byte(&mut self, chunk: usize, pos: usize) {
        let start = chunk * self.chunk_len;
        self.orders.begin_byte(&self.data[start..start + pos]);
        let done = &self.done;
        self.matcher.begin_byte(chunk, pos, &self.data, |c| {
            done.get(c).copied().unwrap_or(0)
        });
    }

    /// Codes the next byte of `chunk`, whose distribution under the
    /// transformer is `table`, and returns it.
    pub fn code_byte<C: BitCoder>(
        &mut self,
        chunk: usize,
        table: &FreqTable,
        coder: &mut C,
    ) -> Result<u8, CoderError> {
        let chunk = chunk + self.offset / self.chunk_len;
        let start = chunk * self.chunk_len;
        let Some(&pos) = self.done.get(chunk) else {
            return Err(CoderError::Corrupt);
        };
        if pos >= self.chunk_len || start + pos >= self.data.len() || table.symbols() != 256 {
            return Err(CoderError::Corrupt);
        }
        self.begin_byte(chunk, pos);
        let strength = self.matcher.strength();
        // The previous byte of the chunk, 256 at its start.
        let c1 = if pos > 0 {
            self.data[start + pos - 1] as usize
        } else {
            256
        };
        let mut c0 = 1u32;
        for bitpos in 0..8 {
            let mut x = [0i32; INPUTS];
            x[0] = stretch(table_p1(table, c0, bitpos));
            self.orders.predict(c0, &mut x[1..=MODELS]);
            x[IN_MATCH] = self.matcher.predict(c0, bitpos);
            x[IN_BIAS] = 256;
            // Two mixers over the same inputs, their weights chosen by
            // different contexts, averaged in the logistic domain: one by
            // how much the adaptive models know here, one by how sure the
            // transformer is.
            let p_a = self
                .mixer
                .mix(&x, strength * (MODELS + 1) + self.orders.seen());
            let sure = (x[0].unsigned_abs() as usize / 256).min(8);
            let p_b = self.mixer2.mix(&x, sure * 8 + bitpos as usize);
            let pm = squash::squash((stretch(p_a) + stretch(p_b)) / 2);
            let a0 = self.apm0.refine(pm, c0 as usize);
            let a1 = self.apm1.refine(pm, c1 * 256 + c0 as usize);
            let p1 = ((pm + a0 + 2 * a1) / 4).clamp(1, 65535);
            let bit = coder.code(p1)?;
            self.mixer.update(&x, bit);
            self.mixer2.update(&x, bit);
            self.apm0.update(bit);
            self.apm1.update(bit);
            self.orders.update(bit);
            self.matcher.update(bit);
            c0 = (c0 << 1) | bit;
        }
        let byte = c0 as u8;
        self.data[start + pos] = byte;
        self.done[chunk] += 1;
        self.matcher.end_byte(chunk, pos, &self.data);
        Ok(byte)
    }

    /// The block as coded so far (bytes not coded yet are zeros).
    pub fn block(&self) -> &[u8] {
        &self.data[self.offset..]
    }

    /// The block as coded so far.
    pub fn into_block(mut self) -> Vec<u8> {
        self.data.drain(..self.offset);
        self.data
    }
}

#[cfg(test)]
mod tests;
