//! Tensors on the wire: KServe v2 datatype names, raw little-endian contents, and the served
//! model's input and output as the element's [`ModelIo`].

use half::f16;

use super::proto::model_metadata_response::TensorMetadata;
use crate::config::{InputType, ModelIo};

/// Element types sent as raw tensor contents (`raw_input_contents`, little-endian).
pub trait WireElement: Copy + Send + Sync + 'static {
    /// Bytes per element.
    const SIZE: usize;
    /// The KServe v2 datatype name.
    const DATATYPE: &'static str;
    fn put(self, out: &mut [u8]);
}

impl WireElement for f32 {
    const SIZE: usize = 4;
    const DATATYPE: &'static str = "FP32";
    fn put(self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_le_bytes());
    }
}

impl WireElement for f16 {
    const SIZE: usize = 2;
    const DATATYPE: &'static str = "FP16";
    fn put(self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_le_bytes());
    }
}

impl WireElement for u8 {
    const SIZE: usize = 1;
    const DATATYPE: &'static str = "UINT8";
    fn put(self, out: &mut [u8]) {
        out[0] = self;
    }
}

/// The KServe v2 datatype name of an input type.
pub fn datatype(ty: InputType) -> &'static str {
    match ty {
        InputType::F32 => f32::DATATYPE,
        InputType::F16 => f16::DATATYPE,
        InputType::U8 => u8::DATATYPE,
    }
}

/// `items` concatenated as raw little-endian bytes (one tensor's `raw_input_contents`).
pub fn encode<T: WireElement>(items: &[&[T]]) -> Vec<u8> {
    let len: usize = items.iter().map(|i| i.len()).sum();
    let mut out = vec![0u8; len * T::SIZE];
    let values = items.iter().flat_map(|i| i.iter());
    for (chunk, v) in out.chunks_exact_mut(T::SIZE).zip(values) {
        v.put(chunk);
    }
    out
}

/// Raw output contents of datatype `datatype` as float32 scores.
pub fn decode_scores(datatype: &str, raw: &[u8]) -> Result<Vec<f32>, String> {
    let (size, f): (usize, fn(&[u8]) -> f32) = match datatype {
        "FP32" => (4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        "FP16" => (2, |b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
        other => {
            return Err(format!(
                "the scores have datatype {other}; they must be FP32 or FP16"
            ))
        }
    };
    if !raw.len().is_multiple_of(size) {
        return Err(format!(
            "{} bytes of {datatype} scores is not a whole number of values",
            raw.len()
        ));
    }
    Ok(raw.chunks_exact(size).map(f).collect())
}

/// The served model's input and output (from its metadata) as the element's [`ModelIo`]; the
/// batch dimension is -1 when the server batches.
pub fn model_io(inputs: &[TensorMetadata], outputs: &[TensorMetadata]) -> Result<ModelIo, String> {
    let input = match inputs {
        [one] => one,
        _ => {
            return Err(format!(
                "the model has {} inputs; the element feeds models with one clip input",
                inputs.len()
            ))
        }
    };
    let output = outputs
        .first()
        .ok_or_else(|| "the model has no output".to_string())?;
    if !matches!(output.datatype.as_str(), "FP32" | "FP16") {
        return Err(format!(
            "output '{}' has datatype {}; scores must be FP32 or FP16",
            output.name, output.datatype
        ));
    }
    Ok(ModelIo {
        input_name: input.name.clone(),
        input_shape: input.shape.clone(),
        input_type: match input.datatype.as_str() {
            "FP32" => Ok(InputType::F32),
            "FP16" => Ok(InputType::F16),
            "UINT8" => Ok(InputType::U8),
            other => Err(other.to_string()),
        },
        output_name: output.name.clone(),
        output_shape: output.shape.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, datatype: &str, shape: &[i64]) -> TensorMetadata {
        TensorMetadata {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn raw_contents_are_little_endian_and_concatenated() {
        let a = [1.0f32, -2.5];
        let b = [0.25f32];
        let raw = encode::<f32>(&[&a, &b]);
        assert_eq!(raw.len(), 12);
        assert_eq!(&raw[4..8], &(-2.5f32).to_le_bytes());
        assert_eq!(decode_scores("FP32", &raw).unwrap(), vec![1.0, -2.5, 0.25]);
        let h = [f16::from_f32(0.5), f16::from_f32(-3.0)];
        let raw = encode::<f16>(&[&h]);
        assert_eq!(raw, [0x00, 0x38, 0x00, 0xc2]);
        assert_eq!(decode_scores("FP16", &raw).unwrap(), vec![0.5, -3.0]);
        assert_eq!(encode::<u8>(&[&[1, 2], &[255]]), vec![1, 2, 255]);
        assert!(decode_scores("FP32", &[0; 6])
            .unwrap_err()
            .contains("6 bytes"));
        assert!(decode_scores("INT64", &[0; 8])
            .unwrap_err()
            .contains("INT64"));
    }

    #[test]
    fn metadata_becomes_model_io() {
        let io = model_io(
            &[tensor("video", "UINT8", &[-1, 4, 8, 8, 3])],
            &[tensor("scores", "FP16", &[-1, 12])],
        )
        .unwrap();
        assert_eq!(io.input_type, Ok(InputType::U8));
        assert_eq!(io.input_shape, vec![-1, 4, 8, 8, 3]);
        assert_eq!(
            (io.input_name.as_str(), io.output_name.as_str()),
            ("video", "scores")
        );
        let io = model_io(&[tensor("x", "INT64", &[1])], &[tensor("y", "FP32", &[1])]).unwrap();
        assert_eq!(io.input_type, Err("INT64".into()));
        assert!(model_io(&[], &[tensor("y", "FP32", &[1])])
            .unwrap_err()
            .contains("0 inputs"));
        assert!(
            model_io(&[tensor("x", "FP32", &[1])], &[tensor("y", "INT32", &[1])])
                .unwrap_err()
                .contains("INT32")
        );
        assert_eq!(datatype(InputType::F16), "FP16");
    }
}
