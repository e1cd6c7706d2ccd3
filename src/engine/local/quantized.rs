//! Quantized (int8) models and where they may run.
//!
//! An int8 export holds its integer arithmetic as QuantizeLinear/DequantizeLinear pairs (QDQ)
//! around float operators, or as integer operators (QLinearConv, ConvInteger, ...). OpenVINO and
//! ONNX Runtime's CPU provider fuse them into integer kernels; ONNX Runtime's CUDA provider has no
//! such fusion (only TensorRT's has), so under CUDA every convolution runs in float32 between
//! extra quantize and dequantize kernels: slower than the model's float32 export and with int8's
//! rounding. The engine refuses such a model under CUDA, naming what to use instead.

use prost::Message;

use super::Provider;
use crate::engine::EngineError;

/// The parts of ONNX's `ModelProto` read here (field numbers of onnx.proto; every other field is
/// skipped while decoding, initializers included).
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, tag = "4")]
    op_type: String,
}

/// Operators that only quantized models hold.
const QUANTIZED_OPS: [&str; 8] = [
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
    "DynamicQuantizeLinear",
    "QLinearAdd",
];

/// How many of the main graph's nodes of the ONNX model `bytes` are quantization operators (0
/// also for bytes that do not decode: ONNX Runtime reports those itself).
pub(super) fn quantized_nodes(bytes: &[u8]) -> usize {
    ModelProto::decode(bytes)
        .ok()
        .and_then(|m| m.graph)
        .map_or(0, |g| {
            g.node
                .iter()
                .filter(|n| QUANTIZED_OPS.contains(&n.op_type.as_str()))
                .count()
        })
}

/// The error for a model with `nodes` quantization nodes ([`quantized_nodes`]), shown as
/// `shown`, opened on `provider`: none but for a quantized model under CUDA.
pub(super) fn refuse_quantized(
    provider: Provider,
    nodes: usize,
    shown: &str,
) -> Result<(), EngineError> {
    if provider != Provider::Cuda || nodes == 0 {
        return Ok(());
    }
    Err(EngineError::QuantizedOnCuda {
        path: shown.to_string(),
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(ops: &[&str]) -> Vec<u8> {
        ModelProto {
            graph: Some(GraphProto {
                node: ops
                    .iter()
                    .map(|op| NodeProto {
                        op_type: op.to_string(),
                    })
                    .collect(),
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn quantization_operators_are_counted() {
        let qdq = model(&["DequantizeLinear", "Conv", "QuantizeLinear", "Relu"]);
        assert_eq!(quantized_nodes(&qdq), 2);
        assert_eq!(quantized_nodes(&model(&["Conv", "Relu"])), 0);
        assert_eq!(quantized_nodes(b"not a model"), 0);
    }

    #[test]
    fn an_int8_model_is_refused_under_cuda_only() {
        let qdq = quantized_nodes(&model(&["DequantizeLinear", "Conv"]));
        for provider in [Provider::Cpu, Provider::OpenVino] {
            assert!(refuse_quantized(provider, qdq, "int8.onnx").is_ok());
        }
        let float = quantized_nodes(&model(&["Conv"]));
        assert!(refuse_quantized(Provider::Cuda, float, "f32.onnx").is_ok());
        let e = refuse_quantized(Provider::Cuda, qdq, "int8.onnx")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("model 'int8.onnx' is quantized"), "{e}");
        assert!(e.contains("execution-provider=openvino"), "{e}");
        assert!(e.contains("float32"), "{e}");
    }
}
