//! A minimal reader of the protobuf wire format for ONNX model files: the
//! `metadata_props` and the graph's initializers, which is all the reference
//! engine needs. Writing it by hand keeps protobuf code generation out of
//! the build; it reads untrusted bytes, so every length is checked against
//! what is left and nothing is allocated beyond what the input can fill.
//!
//! Field numbers (onnx/onnx.proto, checked against the `onnx` package):
//! ModelProto.graph = 7, ModelProto.metadata_props = 14;
//! StringStringEntryProto key = 1, value = 2; GraphProto.initializer = 5;
//! TensorProto dims = 1, data_type = 2, segment = 3, int32_data = 5,
//! int64_data = 7, name = 8, raw_data = 9, data_location = 14.

use super::ModelError;

/// TensorProto.DataType values the integer model uses.
pub const UINT8: i32 = 2;
pub const INT8: i32 = 3;
pub const INT32: i32 = 6;
pub const INT64: i32 = 7;

/// TensorProto.DataLocation.EXTERNAL: the data lives in another file.
const EXTERNAL: u64 = 1;

/// What the reference engine reads from a model file.
#[derive(Debug, Default)]
pub struct Model<'a> {
    /// `metadata_props` in file order.
    pub metadata: Vec<(String, String)>,
    pub initializers: Vec<Tensor<'a>>,
}

impl Model<'_> {
    /// The value of metadata key `key`; a key given twice is an error, since
    /// readers disagree on which one wins.
    pub fn metadata_value(&self, key: &str) -> Result<Option<&str>, ModelError> {
        let mut found = None;
        for (k, v) in &self.metadata {
            if k == key {
                if found.is_some() {
                    return Err(bad(format!("metadata key {key} given twice")));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }
}

/// One initializer; its data stays in the file's bytes until asked for.
#[derive(Debug, Default)]
pub struct Tensor<'a> {
    pub name: String,
    pub dims: Vec<usize>,
    pub data_type: i32,
    raw: Option<&'a [u8]>,
    /// `int32_data` and `int64_data` as runs of varints: a packed field is
    /// one run, an unpacked element is a run of one.
    int32_runs: Vec<&'a [u8]>,
    int64_runs: Vec<&'a [u8]>,
}

impl<'a> Tensor<'a> {
    /// A UINT8 tensor's bytes, borrowed from the file (`raw_data` only).
    pub fn u8_bytes(&self) -> Result<&'a [u8], ModelError> {
        if self.data_type != UINT8 {
            return Err(bad(format!(
                "{}: data type {}, expected {UINT8}",
                self.name, self.data_type
            )));
        }
        match self.raw {
            Some(raw) if raw.len() == self.numel()? => Ok(raw),
            _ => Err(bad(format!("{}: no raw data of its size", self.name))),
        }
    }

    /// The number of elements the dims describe.
    pub fn numel(&self) -> Result<usize, ModelError> {
        self.dims.iter().try_fold(1usize, |n, &d| {
            n.checked_mul(d)
                .ok_or_else(|| bad(format!("{}: element count overflows", self.name)))
        })
    }

    pub fn to_i8(&self) -> Result<Vec<i8>, ModelError> {
        self.decode(INT8, 1, |b| b[0] as i8, |v| i8::try_from(v).ok(), true)
    }

    pub fn to_i32(&self) -> Result<Vec<i32>, ModelError> {
        self.decode(
            INT32,
            4,
            |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            |v| i32::try_from(v).ok(),
            true,
        )
    }

    pub fn to_i64(&self) -> Result<Vec<i64>, ModelError> {
        self.decode(
            INT64,
            8,
            |b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
            Some,
            false,
        )
    }

    /// The data as `T`: from little-endian `raw_data` when present,
    /// otherwise from `int32_data` (INT8, INT32) or `int64_data` (INT64).
    fn decode<T>(
        &self,
        data_type: i32,
        size: usize,
        from_le: impl Fn(&[u8]) -> T,
        from_varint: impl Fn(i64) -> Option<T>,
        in_int32_data: bool,
    ) -> Result<Vec<T>, ModelError> {
        if self.data_type != data_type {
            return Err(bad(format!(
                "{}: data type {}, expected {data_type}",
                self.name, self.data_type
            )));
        }
        let n = self.numel()?;
        if let Some(raw) = self.raw {
            if n.checked_mul(size) != Some(raw.len()) {
                return Err(bad(format!(
                    "{}: {} bytes of data for {n} elements",
                    self.name,
                    raw.len()
                )));
            }
            return Ok(raw.chunks_exact(size).map(from_le).collect());
        }
        let runs = if in_int32_data {
            &self.int32_runs
        } else {
            &self.int64_runs
        };
        // Every varint takes at least one byte, so this bounds the allocation
        // by the file's size whatever the dims claim.
        let bytes: usize = runs.iter().map(|r| r.len()).sum();
        let mut out = Vec::with_capacity(n.min(bytes));
        for run in runs {
            let mut r = Reader::new(run);
            while !r.done() {
                let v = r.varint()? as i64;
                // int32_data holds int32 values: protobuf keeps the low 32 bits.
                let v = if in_int32_data {
                    i64::from(v as i32)
                } else {
                    v
                };
                let x = from_varint(v)
                    .ok_or_else(|| bad(format!("{}: value {v} out of range", self.name)))?;
                if out.len() == n {
                    return Err(bad(format!("{}: more than {n} elements", self.name)));
                }
                out.push(x);
            }
        }
        if out.len() != n {
            return Err(bad(format!(
                "{}: {} elements of data for {n}",
                self.name,
                out.len()
            )));
        }
        Ok(out)
    }
}

/// Reads the parts of a serialised ModelProto the reference engine uses.
pub fn parse_model(bytes: &[u8]) -> Result<Model<'_>, ModelError> {
    let mut model = Model::default();
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            (7, Value::Bytes(graph)) => parse_graph(graph, &mut model.initializers)?,
            (14, Value::Bytes(entry)) => model.metadata.push(parse_entry(entry)?),
            (7 | 14, _) => return Err(bad(format!("model field {field} has the wrong wire type"))),
            _ => {}
        }
    }
    Ok(model)
}

/// A graph given twice merges as protobuf merges messages: its repeated
/// `initializer` fields add up.
fn parse_graph<'a>(bytes: &'a [u8], out: &mut Vec<Tensor<'a>>) -> Result<(), ModelError> {
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            (5, Value::Bytes(t)) => out.push(parse_tensor(t)?),
            (5, _) => return Err(bad("graph initializer has the wrong wire type")),
            _ => {}
        }
    }
    Ok(())
}

fn parse_entry(bytes: &[u8]) -> Result<(String, String), ModelError> {
    let (mut key, mut value) = (String::new(), String::new());
    let mut r = Reader::new(bytes);
    while let Some((field, v)) = r.field()? {
        match (field, v) {
            (1, Value::Bytes(b)) => key = string(b)?,
            (2, Value::Bytes(b)) => value = string(b)?,
            (1 | 2, _) => return Err(bad("metadata entry field has the wrong wire type")),
            _ => {}
        }
    }
    Ok((key, value))
}

fn parse_tensor(bytes: &[u8]) -> Result<Tensor<'_>, ModelError> {
    let mut t = Tensor::default();
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            (1, Value::Varint(d)) => t.dims.push(dim(d)?),
            (1, Value::Bytes(run)) => {
                let mut dims = Reader::new(run);
                while !dims.done() {
                    t.dims.push(dim(dims.varint()?)?);
                }
            }
            (2, Value::Varint(v)) => {
                t.data_type =
                    i32::try_from(v).map_err(|_| bad(format!("data type {v} out of range")))?
            }
            (3, _) => return Err(bad("segmented tensors are not supported")),
            (5, Value::Bytes(run)) => t.int32_runs.push(run),
            (5, Value::Varint(_)) => t.int32_runs.push(r.last_varint()),
            (7, Value::Bytes(run)) => t.int64_runs.push(run),
            (7, Value::Varint(_)) => t.int64_runs.push(r.last_varint()),
            (8, Value::Bytes(b)) => t.name = string(b)?,
            (9, Value::Bytes(b)) => t.raw = Some(b),
            (14, Value::Varint(EXTERNAL)) => {
                return Err(bad("tensors with external data are not supported"))
            }
            (14, Value::Varint(_)) => {}
            (1 | 2 | 5 | 7 | 8 | 9 | 14, _) => {
                return Err(bad(format!("tensor field {field} has the wrong wire type")))
            }
            _ => {}
        }
    }
    Ok(t)
}

fn dim(d: u64) -> Result<usize, ModelError> {
    // A negative int64 dim arrives as a huge varint; both are refused here.
    usize::try_from(d)
        .ok()
        .filter(|&d| d <= i64::MAX as usize)
        .ok_or_else(|| bad(format!("tensor dimension {} is invalid", d as i64)))
}

fn string(b: &[u8]) -> Result<String, ModelError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("a string field is not UTF-8"))
}

fn bad(detail: impl Into<String>) -> ModelError {
    ModelError::BadModel(format!("ONNX protobuf: {}", detail.into()))
}

/// One field's payload.
#[derive(Debug)]
enum Value<'a> {
    Varint(u64),
    /// Length-delimited: a string, bytes, a message or a packed run.
    Bytes(&'a [u8]),
    /// A fixed 32- or 64-bit value, which nothing read here uses.
    Fixed,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Where the last varint field's value started, for unpacked repeated
    /// fields kept as runs of one.
    last_varint_at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader {
            bytes,
            pos: 0,
            last_varint_at: 0,
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn varint(&mut self) -> Result<u64, ModelError> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(bad("truncated varint"));
            };
            self.pos += 1;
            // The tenth byte holds only the top bit of a u64.
            if i == 9 && b > 1 {
                return Err(bad("varint longer than 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ModelError> {
        let left = self.bytes.len() - self.pos;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| bad(format!("field of {n} bytes with {left} left")))?;
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next field's number and payload, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, ModelError> {
        if self.done() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 {
            return Err(bad("field number 0"));
        }
        let value = match wire {
            0 => {
                self.last_varint_at = self.pos;
                Value::Varint(self.varint()?)
            }
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let n = self.varint()?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            // 3 and 4 are the deprecated groups, which ONNX never uses.
            _ => return Err(bad(format!("wire type {wire} of field {field}"))),
        };
        Ok(Some((field, value)))
    }

    /// The bytes of the varint the last `field()` call read.
    fn last_varint(&self) -> &'a [u8] {
        &self.bytes[self.last_varint_at..self.pos]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn key(field: u64, wire: u64, out: &mut Vec<u8>) {
        varint(field << 3 | wire, out);
    }

    fn bytes_field(field: u64, payload: &[u8], out: &mut Vec<u8>) {
        key(field, 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn varint_field(field: u64, v: u64, out: &mut Vec<u8>) {
        key(field, 0, out);
        varint(v, out);
    }

    /// A model of one graph holding `tensors`, with metadata `meta`.
    fn model(tensors: &[Vec<u8>], meta: &[(&str, &str)]) -> Vec<u8> {
        let mut graph = Vec::new();
        bytes_field(1, b"a node we do not read", &mut graph);
        for t in tensors {
            bytes_field(5, t, &mut graph);
        }
        let mut m = Vec::new();
        varint_field(1, 9, &mut m);
        for (k, v) in meta {
            let mut e = Vec::new();
            bytes_field(2, v.as_bytes(), &mut e);
            bytes_field(1, k.as_bytes(), &mut e);
            bytes_field(14, &e, &mut m);
        }
        bytes_field(7, &graph, &mut m);
        m
    }

    #[test]
    fn reads_fields_in_any_order_and_skips_unknown_ones() {
        let mut t = Vec::new();
        bytes_field(9, &[1, 0xff, 0x7f], &mut t);
        key(4, 5, &mut t); // float_data, fixed32: skipped
        t.extend_from_slice(&[0; 4]);
        key(10, 1, &mut t); // double_data, fixed64: skipped
        t.extend_from_slice(&[0; 8]);
        bytes_field(12, b"doc", &mut t);
        bytes_field(8, b"w", &mut t);
        varint_field(2, INT8 as u64, &mut t);
        varint_field(1, 3, &mut t);
        let m = model(&[t], &[("llmfs.config", "{}"), ("other", "x")]);
        let parsed = parse_model(&m).unwrap();
        assert_eq!(parsed.metadata_value("llmfs.config").unwrap(), Some("{}"));
        assert_eq!(parsed.metadata_value("missing").unwrap(), None);
        let w = &parsed.initializers[0];
        assert_eq!((w.name.as_str(), w.dims.as_slice()), ("w", &[3][..]));
        assert_eq!(w.to_i8().unwrap(), vec![1, -1, 127]);
        assert!(w.to_i32().is_err(), "the wrong type is refused");
    }

    #[test]
    fn packed_and_unpacked_dims_and_int_data() {
        let mut t = Vec::new();
        let mut packed = Vec::new();
        varint(2, &mut packed);
        varint(1, &mut packed);
        bytes_field(1, &packed, &mut t);
        varint_field(1, 2, &mut t);
        varint_field(2, INT32 as u64, &mut t);
        // int32_data: -5 as a sign-extended varint, unpacked, then a packed run.
        varint_field(5, -5i64 as u64, &mut t);
        let mut run = Vec::new();
        for v in [7i64, i32::MIN as i64, i32::MAX as i64] {
            varint(v as u64, &mut run);
        }
        bytes_field(5, &run, &mut t);
        let m = model(&[t], &[]);
        let parsed = parse_model(&m).unwrap();
        let w = &parsed.initializers[0];
        assert_eq!(w.dims, vec![2, 1, 2]);
        assert_eq!(w.to_i32().unwrap(), vec![-5, 7, i32::MIN, i32::MAX]);

        let mut t = Vec::new();
        varint_field(1, 2, &mut t);
        varint_field(2, INT64 as u64, &mut t);
        varint_field(7, i64::MIN as u64, &mut t);
        varint_field(7, 3, &mut t);
        let m = model(&[t], &[]);
        let parsed = parse_model(&m).unwrap();
        assert_eq!(parsed.initializers[0].to_i64().unwrap(), vec![i64::MIN, 3]);

        let mut t = Vec::new();
        varint_field(1, 1, &mut t);
        varint_field(2, INT8 as u64, &mut t);
        varint_field(5, 200, &mut t);
        let m = model(&[t], &[]);
        let parsed = parse_model(&m).unwrap();
        assert!(parsed.initializers[0].to_i8().is_err(), "200 is no int8");
    }

    #[test]
    fn raw_data_little_endian() {
        let mut t = Vec::new();
        varint_field(2, INT64 as u64, &mut t);
        varint_field(1, 1, &mut t);
        bytes_field(9, &(-2i64).to_le_bytes(), &mut t);
        let m = model(&[t], &[]);
        let parsed = parse_model(&m).unwrap();
        assert_eq!(parsed.initializers[0].to_i64().unwrap(), vec![-2]);
    }

    #[test]
    fn data_that_does_not_fit_the_dims_is_an_error() {
        for (dims, data) in [
            (&[4u64][..], 3usize),
            (&[2, 2], 5),
            (&[1 << 62, 1 << 62], 1),
        ] {
            let mut t = Vec::new();
            for &d in dims {
                varint_field(1, d, &mut t);
            }
            varint_field(2, INT8 as u64, &mut t);
            bytes_field(9, &vec![0; data], &mut t);
            let m = model(&[t], &[]);
            let parsed = parse_model(&m).unwrap();
            assert!(parsed.initializers[0].to_i8().is_err(), "{dims:?} {data}");
        }
        // Huge dims with little int32_data: an error, not a huge allocation.
        let mut t = Vec::new();
        varint_field(1, 1 << 40, &mut t);
        varint_field(2, INT32 as u64, &mut t);
        varint_field(5, 1, &mut t);
        let m = model(&[t], &[]);
        let parsed = parse_model(&m).unwrap();
        assert!(parsed.initializers[0].to_i32().is_err());
    }

    #[test]
    fn negative_dims_external_data_and_duplicates_are_errors() {
        let mut t = Vec::new();
        varint_field(1, -1i64 as u64, &mut t);
        assert!(parse_model(&model(&[t], &[])).is_err());
        let mut t = Vec::new();
        varint_field(14, EXTERNAL, &mut t);
        assert!(parse_model(&model(&[t], &[])).is_err());
        let m = model(&[], &[("k", "a"), ("k", "b")]);
        assert!(parse_model(&m).unwrap().metadata_value("k").is_err());
    }

    #[test]
    fn truncated_input_is_an_error() {
        // A varint whose continuation bit runs off the end.
        assert!(parse_model(&[0x08, 0x80]).is_err());
        assert!(parse_model(&[0x80]).is_err());
        // A length past the end; a wire type of a group; field number 0.
        assert!(parse_model(&[0x3a, 0x05, 0x00]).is_err());
        assert!(parse_model(&[0x0b]).is_err());
        assert!(parse_model(&[0x00, 0x00]).is_err());
        // An 11-byte varint.
        let mut long = vec![0x08];
        long.extend_from_slice(&[0xff; 10]);
        long.push(0x01);
        assert!(parse_model(&long).is_err());
        // Every prefix of a valid model parses or fails, never panics.
        let mut t = Vec::new();
        varint_field(1, 300, &mut t);
        varint_field(2, INT8 as u64, &mut t);
        bytes_field(8, b"name", &mut t);
        bytes_field(9, &[5; 300], &mut t);
        let m = model(&[t], &[("llmfs.config", "{\"a\": 1}")]);
        assert!(parse_model(&m).is_ok());
        for n in 0..m.len() {
            if let Ok(p) = parse_model(&m[..n]) {
                for t in &p.initializers {
                    let _ = t.to_i8();
                }
            }
        }
    }

    #[test]
    fn an_empty_file_is_an_empty_model() {
        let m = parse_model(&[]).unwrap();
        assert!(m.metadata.is_empty() && m.initializers.is_empty());
    }
}
