//! `NonLocalClassifyMeta`: a GstCustomMeta carrying one clip result on the first buffer pushed
//! after the result is ready. Being a custom meta, C (`gst_buffer_get_custom_meta (buf,
//! "NonLocalClassifyMeta")`) and Python (PyGObject) read it without this crate; Rust code uses
//! [`NonLocalClassifyMeta::results`].

use crate::results::ClipResult;

/// The name the meta is registered under (and its structure's name).
pub const META_NAME: &str = "NonLocalClassifyMeta";

/// Typed access to the custom meta.
pub struct NonLocalClassifyMeta;

impl NonLocalClassifyMeta {
    /// Register the meta (idempotent; the plugin does it when it loads).
    pub fn register() {
        if !gst::meta::CustomMeta::is_registered(META_NAME) {
            // No tags: transforms that copy tag-less metas keep it.
            gst::meta::CustomMeta::register(META_NAME, &[]);
        }
    }

    /// Attach one result to a buffer.
    pub fn add(buffer: &mut gst::BufferRef, result: &ClipResult) -> Result<(), glib::BoolError> {
        let mut meta = gst::meta::CustomMeta::add(buffer, META_NAME)?;
        result.write_fields(meta.mut_structure());
        Ok(())
    }

    /// Every result attached to a buffer, oldest first.
    pub fn results(buffer: &gst::BufferRef) -> Vec<ClipResult> {
        let mut out = Vec::new();
        buffer.foreach_meta(|meta| {
            if let Some(custom) = meta.try_as_custom_meta() {
                if custom.has_name(META_NAME) {
                    out.extend(ClipResult::from_structure(custom.structure()));
                }
            }
            std::ops::ControlFlow::Continue(())
        });
        out
    }
}

use gst::glib;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trip_on_a_buffer() {
        gst::init().unwrap();
        NonLocalClassifyMeta::register();
        let result = ClipResult {
            timestamp: Some(1),
            stream_time: Some(2),
            running_time: Some(3),
            duration: Some(4),
            clip_index: 5,
            labels: vec!["arm wrestling".into()],
            scores: vec![0.9],
            dropped: 0,
            latency: 6,
            object: None,
        };
        let mut buffer = gst::Buffer::new();
        assert!(NonLocalClassifyMeta::results(&buffer).is_empty());
        {
            let b = buffer.get_mut().unwrap();
            NonLocalClassifyMeta::add(b, &result).unwrap();
            let mut second = result.clone();
            second.clip_index = 6;
            NonLocalClassifyMeta::add(b, &second).unwrap();
        }
        let got = NonLocalClassifyMeta::results(&buffer);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], result);
        assert_eq!(got[1].clip_index, 6);
        // Readable through the plain C API by name too.
        let c = gst::meta::CustomMeta::from_buffer(&buffer, META_NAME).unwrap();
        assert_eq!(c.structure().get::<&str>("label").unwrap(), "arm wrestling");
    }
}
