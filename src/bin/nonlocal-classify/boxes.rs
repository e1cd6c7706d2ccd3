//! `--boxes FILE`: the boxes of a video's objects in the MOT-challenge text format, one box per
//! line, `frame,id,x,y,w,h[,conf[,...]]` (docs/classify.md, "Who is doing what").
//!
//! - `frame`: the decoded frame the box is on, counting from 1;
//! - `id`: the object's identity (0 or more), or -1 for none: the element then associates the
//!   boxes of consecutive frames itself;
//! - `x`, `y`, `w`, `h`: the box's left, top, width and height in pixels of the decoded frame;
//!   decimals are rounded to the nearest pixel; width and height must be positive;
//! - `conf`: the box's confidence (default 1), written into the box clamped to 0..1; the element
//!   does not use it to choose boxes. Further columns (MOT's class, visibility, 3D position) are
//!   ignored.
//!
//! Blank lines and lines starting with `#` are skipped; fields may have spaces around them; a
//! line may end in `\r\n`.
//! Numbers written with a fractional part of zero (`3.0`) are taken for frames and ids. An error
//! names the file, the line and what is wrong with it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

/// Coordinates beyond this (in pixels) are refused: no frame is that large, and the box's
/// right and bottom edges stay within `i32`.
const MAX_COORDINATE: f64 = 10_000_000.0;

/// One box on one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct MotBox {
    /// The object's identity; `None` for MOT's -1.
    pub id: Option<u64>,
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
    /// 0 to 1.
    pub confidence: f32,
}

/// A video's boxes by frame number (from 1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Boxes {
    frames: BTreeMap<u64, Vec<MotBox>>,
}

impl Boxes {
    /// The boxes of `path`; an error naming `path:line` and the trouble.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path)
            .with_context(|| format!("cannot read the boxes file {}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))
    }

    /// The boxes of a MOT text; an error `LINE: trouble`. MOT text has no quoting, so a line is
    /// its fields split at commas (the csv crate's line numbers leave out comment lines, which
    /// errors must count).
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let mut boxes = Self::default();
        // Where each (frame, id) was boxed first.
        let mut seen: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        for (line, bytes) in (1u64..).zip(text.split(|&b| b == b'\n')) {
            let text = std::str::from_utf8(bytes)
                .map_err(|e| format!("{line}: not a line of text ({e})"))?
                .trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = text.split(',').map(str::trim).collect();
            let (frame, b) = parse_line(&fields).map_err(|e| format!("{line}: {e}"))?;
            if let Some(id) = b.id {
                if let Some(first) = seen.insert((frame, id), line) {
                    return Err(format!(
                        "{line}: object {id} is boxed twice on frame {frame} (line {first} too): give each object one box per frame"
                    ));
                }
            }
            boxes.frames.entry(frame).or_default().push(b);
        }
        Ok(boxes)
    }

    /// The boxes of frame `frame` (from 1), in the file's order.
    // Without GstAnalytics objects mode stops before any frame.
    #[cfg_attr(not(feature = "analytics"), allow(dead_code))]
    pub fn on_frame(&self, frame: u64) -> &[MotBox] {
        self.frames.get(&frame).map_or(&[], Vec::as_slice)
    }
}

const FORMAT: &str = "frame,id,x,y,w,h[,conf,...]";

/// One line: its frame and its box.
fn parse_line(record: &[&str]) -> Result<(u64, MotBox), String> {
    if record.len() < 6 {
        return Err(format!(
            "{} field{}, a MOT line has at least 6: {FORMAT}",
            record.len(),
            if record.len() == 1 { "" } else { "s" }
        ));
    }
    let field = |i: usize| record.get(i).copied().unwrap_or_default();
    let frame = integer(field(0))
        .filter(|&f| f >= 1 && f <= i128::from(u64::MAX))
        .ok_or_else(|| {
            format!(
                "frame '{}' is not a frame number: frames count from 1",
                field(0)
            )
        })? as u64;
    let id = match integer(field(1)) {
        Some(-1) => None,
        Some(id) if (0..=i128::from(u64::MAX)).contains(&id) => Some(id as u64),
        _ => {
            return Err(format!(
                "id '{}' is not an object id: give 0 or more, or -1 for none",
                field(1)
            ))
        }
    };
    let coordinate = |i: usize, name: &str| -> Result<f64, String> {
        number(field(i))
            .filter(|v| v.abs() <= MAX_COORDINATE)
            .ok_or_else(|| {
                format!(
                    "{name} '{}' is not a pixel coordinate: give a number from -{MAX_COORDINATE} to {MAX_COORDINATE}",
                    field(i)
                )
            })
    };
    let x = coordinate(2, "x")?;
    let y = coordinate(3, "y")?;
    let size = |i: usize, name: &str| -> Result<f64, String> {
        let v = coordinate(i, name)?;
        if v.round() < 1.0 {
            return Err(format!(
                "{name} '{}' is not a size: a box's width and height must be at least one pixel",
                field(i)
            ));
        }
        Ok(v)
    };
    let w = size(4, "width")?;
    let h = size(5, "height")?;
    let confidence = match record.get(6).filter(|c| !c.is_empty()) {
        None => 1.0,
        Some(c) => number(c)
            .ok_or_else(|| format!("conf '{c}' is not a number"))?
            .clamp(0.0, 1.0) as f32,
    };
    // Within ±1e7, so within i32 and so are x + w and y + h.
    let px = |v: f64| v.round() as i32;
    Ok((
        frame,
        MotBox {
            id,
            x: px(x),
            y: px(y),
            w: px(w),
            h: px(h),
            confidence,
        },
    ))
}

/// A finite number.
fn number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A whole number, written as one (`12`) or as a number whose fraction is zero (`12.0`).
fn integer(text: &str) -> Option<i128> {
    if let Ok(v) = text.parse::<i128>() {
        return Some(v);
    }
    let v = number(text)?;
    (v.fract() == 0.0 && v.abs() < 2f64.powi(64)).then_some(v as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Boxes, String> {
        Boxes::parse(text.as_bytes())
    }

    fn b(id: Option<u64>, x: i32, y: i32, w: i32, h: i32, confidence: f32) -> MotBox {
        MotBox {
            id,
            x,
            y,
            w,
            h,
            confidence,
        }
    }

    #[test]
    fn mot_lines_by_frame() {
        let boxes = parse(
            "# frame,id,x,y,w,h,conf,x,y,z\n\
             1,1,0,0,340,256,1,-1,-1,-1\n\
             1,2,340,0,340,256,1,-1,-1,-1\n\
             \n\
             2, 1, 10.4, 20.6, 30.5, 40.49, 0.25\n\
             2,-1,5,5,8,8\n\
             \x20\x20\n\
             7.0,3.0,-4,-6,10,10,55.5,extra\n",
        )
        .unwrap();
        assert_eq!(
            boxes.on_frame(1),
            [
                b(Some(1), 0, 0, 340, 256, 1.0),
                b(Some(2), 340, 0, 340, 256, 1.0)
            ]
        );
        // Decimals rounded, conf kept, -1: no identity, conf defaults to 1.
        assert_eq!(
            boxes.on_frame(2),
            [b(Some(1), 10, 21, 31, 40, 0.25), b(None, 5, 5, 8, 8, 1.0)]
        );
        // Whole numbers written as decimals; negative positions (the element clips them); conf
        // clamped to 1; extra columns ignored.
        assert_eq!(boxes.on_frame(7), [b(Some(3), -4, -6, 10, 10, 1.0)]);
        assert!(boxes.on_frame(3).is_empty() && boxes.on_frame(0).is_empty());
        assert_eq!(boxes.frames.keys().copied().collect::<Vec<_>>(), [1, 2, 7]);
        assert_eq!(parse("").unwrap(), Boxes::default());
        assert_eq!(parse("# only a comment\n\n").unwrap(), Boxes::default());
        // Windows line ends.
        assert_eq!(
            parse("1,1,1,2,3,4\r\n2,1,1,2,3,4\r\n").unwrap().on_frame(2),
            [b(Some(1), 1, 2, 3, 4, 1.0)]
        );
    }

    #[test]
    fn huge_ids_up_to_u64() {
        let max = u64::MAX;
        let boxes = parse(&format!("1,{max},0,0,4,4\n")).unwrap();
        assert_eq!(boxes.on_frame(1)[0].id, Some(max));
        let err = parse(&format!("1,{},0,0,4,4\n", u128::from(max) + 1)).unwrap_err();
        assert_eq!(
            err,
            "1: id '18446744073709551616' is not an object id: give 0 or more, or -1 for none"
        );
        assert!(parse("1,1e300,0,0,4,4\n")
            .unwrap_err()
            .starts_with("1: id '1e300'"));
    }

    #[test]
    fn malformed_lines_name_their_line_and_trouble() {
        let err = |text: &str| parse(text).unwrap_err();
        assert_eq!(
            err("1,1,0,0,4,4\n2,1,0,0\n"),
            "2: 4 fields, a MOT line has at least 6: frame,id,x,y,w,h[,conf,...]"
        );
        assert_eq!(
            err("1\n"),
            "1: 1 field, a MOT line has at least 6: frame,id,x,y,w,h[,conf,...]"
        );
        // Line numbers count blank lines and comments.
        assert_eq!(
            err("# c\n\n1,1,NaN,0,4,4\n"),
            "3: x 'NaN' is not a pixel coordinate: give a number from -10000000 to 10000000"
        );
        assert!(err("1,1,0,inf,4,4\n").starts_with("1: y 'inf' is not a pixel coordinate"));
        assert!(err("1,1,0,1e9,4,4\n").starts_with("1: y '1e9' is not a pixel coordinate"));
        assert!(err("1,1,0,0,,4\n").starts_with("1: width '' is not a pixel coordinate"));
        assert_eq!(
            err("1,1,0,0,-4,4\n"),
            "1: width '-4' is not a size: a box's width and height must be at least one pixel"
        );
        assert!(err("1,1,0,0,4,0.2\n").starts_with("1: height '0.2' is not a size"));
        assert_eq!(
            err("0,1,0,0,4,4\n"),
            "1: frame '0' is not a frame number: frames count from 1"
        );
        assert!(err("-3,1,0,0,4,4\n").starts_with("1: frame '-3'"));
        assert!(err("1.5,1,0,0,4,4\n").starts_with("1: frame '1.5'"));
        assert!(err("x,1,0,0,4,4\n").starts_with("1: frame 'x'"));
        assert_eq!(
            err("1,-2,0,0,4,4\n"),
            "1: id '-2' is not an object id: give 0 or more, or -1 for none"
        );
        assert!(err("1,nan,0,0,4,4\n").starts_with("1: id 'nan'"));
        assert_eq!(err("1,1,0,0,4,4,NaN\n"), "1: conf 'NaN' is not a number");
        assert_eq!(
            err("1,1,0,0,4,4\n1,2,0,0,4,4\n1,1,9,9,4,4\n"),
            "3: object 1 is boxed twice on frame 1 (line 1 too): give each object one box per frame"
        );
        // Boxes without identity may share a frame.
        assert_eq!(
            parse("1,-1,0,0,4,4\n1,-1,0,0,4,4\n")
                .unwrap()
                .on_frame(1)
                .len(),
            2
        );
        let not_text = Boxes::parse(b"1,1,0,0,4,4\n\xff,1,0,0,4,4\n").unwrap_err();
        assert!(not_text.starts_with("2: not a line of text"), "{not_text}");
    }

    #[test]
    fn a_file_that_cannot_be_read_is_named() {
        let dir = std::env::temp_dir().join(format!("mot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.mot");
        std::fs::write(&bad, "1,1,0,0,4,4\n2,1,0,0,4\n").unwrap();
        let e = Boxes::read(&bad).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:2: 5 fields, a MOT line has at least 6: frame,id,x,y,w,h[,conf,...]",
                bad.display()
            )
        );
        let e = format!("{:#}", Boxes::read(&dir.join("none.mot")).unwrap_err());
        assert!(e.starts_with("cannot read the boxes file "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
