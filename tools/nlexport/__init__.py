"""Model toolchain of nonlocalclassify: ONNX graph builders, checkpoint readers, metadata."""
