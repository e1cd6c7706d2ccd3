//! `dump-inputs`: each clip's model input, exactly as the worker packed it into the engine's
//! batch, written as a NumPy `.npy` file (docs/design.md, "Input dumps"). The exporter calibrates
//! int8 models on these files (tools/export_model.py --int8).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::engine::ValuesMut;

/// The directory each clip's input is written to.
#[derive(Debug, Clone)]
pub(super) struct InputDump {
    dir: PathBuf,
}

impl InputDump {
    /// The dump into `dir`, created with its parents when missing; the error says why it cannot
    /// be.
    pub(super) fn create(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {}", dir.display(), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The file of a clip: `clip-000042.npy`, or `object-7-clip-000042.npy` for an object's clip
    /// (objects mode).
    pub(super) fn path(&self, clip: u64, object: Option<u64>) -> PathBuf {
        let name = match object {
            None => format!("clip-{clip:06}.npy"),
            Some(id) => format!("object-{id}-clip-{clip:06}.npy"),
        };
        self.dir.join(name)
    }

    /// Write a clip's `values`, shaped `shape`, to its file. It is written beside it under a
    /// temporary name and renamed into place, so a reader never finds half a file.
    pub(super) fn write(
        &self,
        clip: u64,
        object: Option<u64>,
        shape: &[i64],
        values: &ValuesMut<'_>,
    ) -> Result<(), String> {
        let path = self.path(clip, object);
        let partial = path.with_extension("npy.part");
        let written = (|| {
            let mut out = BufWriter::new(File::create(&partial)?);
            write_npy(&mut out, shape, values)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&partial, &path)
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            format!("{}: {}", path.display(), e)
        })
    }
}

/// A little-endian C-order array as a `.npy` file (format 1.0): the magic string, the header
/// dictionary padded with spaces to a multiple of 64 bytes, then the values.
fn write_npy(out: &mut impl Write, shape: &[i64], values: &ValuesMut<'_>) -> std::io::Result<()> {
    let descr = match values {
        ValuesMut::F32(_) => "<f4",
        ValuesMut::F16(_) => "<f2",
        ValuesMut::U8(_) => "|u1",
    };
    out.write_all(&npy_header(descr, shape))?;
    // Converted a chunk at a time: one write per 64 KiB or so.
    const CHUNK: usize = 16 * 1024;
    let mut bytes = Vec::with_capacity(CHUNK * 4);
    match values {
        ValuesMut::F32(v) => {
            for chunk in v.chunks(CHUNK) {
                bytes.clear();
                bytes.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
                out.write_all(&bytes)?;
            }
        }
        ValuesMut::F16(v) => {
            for chunk in v.chunks(CHUNK) {
                bytes.clear();
                bytes.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
                out.write_all(&bytes)?;
            }
        }
        ValuesMut::U8(v) => out.write_all(v)?,
    }
    Ok(())
}

/// The `.npy` 1.0 preamble of an array of `descr` (NumPy's type string) shaped `shape`.
fn npy_header(descr: &str, shape: &[i64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(i64::to_string).collect();
    let shape = match dims.as_slice() {
        [one] => format!("({one},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + dictionary + '\n', to a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut header = b"\x93NUMPY\x01\x00".to_vec();
    // Under 64 KiB: shapes are five small numbers.
    header.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn npy(shape: &[i64], values: ValuesMut<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        write_npy(&mut out, shape, &values).unwrap();
        out
    }

    #[test]
    fn the_header_is_numpy_s_format_1_0_padded_to_64_bytes() {
        let mut v = [1.5f32, -2.0];
        let file = npy(&[1, 2], ValuesMut::F32(&mut v));
        assert_eq!(&file[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([file[8], file[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        let dict = std::str::from_utf8(&file[10..10 + len]).unwrap();
        assert!(
            dict.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }"),
            "{dict}"
        );
        assert!(dict.ends_with(" \n"), "{dict:?}");
        assert_eq!(
            &file[10 + len..],
            &[0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0],
            "1.5 and -2.0 little-endian"
        );
    }

    #[test]
    fn every_input_type_has_its_numpy_type_string_and_bytes() {
        let mut h = [f16::from_f32(1.0)];
        let file = npy(&[1], ValuesMut::F16(&mut h));
        let text = String::from_utf8_lossy(&file);
        assert!(text.contains("'descr': '<f2'"), "{text}");
        assert!(text.contains("'shape': (1,)"), "{text}");
        assert_eq!(&file[file.len() - 2..], &[0x00, 0x3c]);
        let mut b = [7u8, 255];
        let file = npy(&[1, 1, 2], ValuesMut::U8(&mut b));
        assert!(String::from_utf8_lossy(&file).contains("'descr': '|u1'"));
        assert_eq!(&file[file.len() - 2..], &[7, 255]);
    }

    #[test]
    fn a_clip_is_written_under_its_index_and_object() {
        let dir = std::env::temp_dir().join(format!("nonlocal-dump-{}", std::process::id()));
        let dump = InputDump::create(&dir.join("a/b")).unwrap();
        let mut v = [0.25f32; 6];
        dump.write(3, None, &[1, 3, 2, 1, 1], &ValuesMut::F32(&mut v))
            .unwrap();
        dump.write(4, Some(9), &[1, 3, 2, 1, 1], &ValuesMut::F32(&mut v))
            .unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["clip-000003.npy", "object-9-clip-000004.npy"]);
        let file = std::fs::read(dir.join("a/b/clip-000003.npy")).unwrap();
        assert_eq!(file.len(), 128 + 6 * 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_named_in_the_error() {
        let file = std::env::temp_dir().join(format!("nonlocal-dump-file-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let err = InputDump::create(&file.join("sub")).unwrap_err();
        assert!(
            err.starts_with(&format!("{}: ", file.join("sub").display())),
            "{err}"
        );
        std::fs::remove_file(&file).unwrap();
    }
}
