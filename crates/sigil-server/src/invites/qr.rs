//! QR codes of invitation URIs (ISO/IEC 18004, error correction level M,
//! encoded by the `qrcode` crate): as SVG for the landing page, and as
//! Unicode half blocks for a terminal. Both draw the code with the quiet
//! zone of four modules the standard asks for, so a phone reads it off
//! any background.

use qrcode::{Color, QrCode};

/// Modules of light margin around the code (ISO/IEC 18004 §6.3.8).
const QUIET: usize = 4;

/// Pixels per module in the SVG's default size.
const SVG_MODULE_PIXELS: usize = 6;

/// The modules of a code, margin included: `true` for dark.
struct Modules {
    /// Modules per side, margin included.
    size: usize,
    dark: Vec<bool>,
}

impl Modules {
    fn of(text: &str) -> Option<Self> {
        let code = QrCode::new(text.as_bytes()).ok()?;
        let width = code.width();
        let colors = code.to_colors();
        let size = width + 2 * QUIET;
        let mut dark = vec![false; size * size];
        for (i, color) in colors.iter().enumerate() {
            if *color == Color::Dark {
                dark[(i / width + QUIET) * size + i % width + QUIET] = true;
            }
        }
        Some(Self { size, dark })
    }

    /// Whether the module at (`x`, `y`) is dark; outside the code and its
    /// margin, nothing is.
    fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.size && y < self.size && self.dark[y * self.size + x]
    }
}

/// `text` as an SVG QR code (dark on white, one path), for inlining in an
/// HTML page; `None` if it is too long for a QR code.
pub fn svg(text: &str) -> Option<String> {
    let modules = Modules::of(text)?;
    let size = modules.size;
    let pixels = size * SVG_MODULE_PIXELS;
    let mut path = String::new();
    for y in 0..size {
        let mut x = 0;
        while x < size {
            if !modules.is_dark(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while modules.is_dark(x, y) {
                x += 1;
            }
            path.push_str(&format!("M{start} {y}h{}v1H{start}z", x - start));
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         width=\"{pixels}\" height=\"{pixels}\" shape-rendering=\"crispEdges\" role=\"img\" \
         aria-label=\"QR code of the invitation\">\
         <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/>\
         <path fill=\"#000\" d=\"{path}\"/></svg>"
    ))
}

/// `text` as a QR code for a terminal, two modules a character with the
/// half blocks `▀ ▄ █`: light modules are drawn and dark ones left blank,
/// for the light-on-dark text of most terminals. `None` if it is too long
/// for a QR code.
pub fn terminal(text: &str) -> Option<String> {
    let modules = Modules::of(text)?;
    let size = modules.size;
    let light = |x, y| y < size && !modules.is_dark(x, y);
    let mut out = String::with_capacity((size + 1) * size.div_ceil(2) * 3);
    for y in (0..size).step_by(2) {
        for x in 0..size {
            out.push(match (light(x, y), light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const URI: &str = "xmpp:alice@example.com?register;preauth=0123456789abcdef0123456789abcdef";

    /// The modules a terminal drawing shows (`true` for dark).
    fn read_terminal(drawing: &str, size: usize) -> Vec<bool> {
        let mut dark = vec![false; size * size];
        for (row, line) in drawing.lines().enumerate() {
            for (x, c) in line.chars().enumerate() {
                let (top, bottom) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected {other:?}"),
                };
                dark[2 * row * size + x] = !top;
                if 2 * row + 1 < size {
                    dark[(2 * row + 1) * size + x] = !bottom;
                }
            }
        }
        dark
    }

    /// The modules an SVG drawing paints (`true` for dark).
    fn read_svg(drawing: &str, size: usize) -> Vec<bool> {
        let path = drawing
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut dark = vec![false; size * size];
        for run in path.split('M').filter(|run| !run.is_empty()) {
            let (start, rest) = run.split_once(' ').unwrap();
            let (y, rest) = rest.split_once('h').unwrap();
            let length = rest.split_once('v').unwrap().0;
            let (start, y, length): (usize, usize, usize) = (
                start.parse().unwrap(),
                y.parse().unwrap(),
                length.parse().unwrap(),
            );
            for x in start..start + length {
                assert!(!dark[y * size + x], "painted twice");
                dark[y * size + x] = true;
            }
        }
        dark
    }

    #[test]
    fn both_drawings_show_exactly_the_codes_modules() {
        let modules = Modules::of(URI).unwrap();
        let size = modules.size;
        // 72 bytes need version 5 at level M (at most 84): 37 modules a side.
        assert_eq!(size, 37 + 2 * QUIET);
        let drawing = terminal(URI).unwrap();
        assert_eq!(drawing.lines().count(), size.div_ceil(2));
        assert!(drawing.lines().all(|line| line.chars().count() == size));
        assert_eq!(read_terminal(&drawing, size), modules.dark);
        let svg = svg(URI).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 45 45\""));
        assert_eq!(read_svg(&svg, size), modules.dark);
    }

    #[test]
    fn the_code_has_its_finder_patterns_and_margin() {
        let modules = Modules::of(URI).unwrap();
        let width = modules.size - 2 * QUIET;
        // Each finder pattern: a dark 7×7 ring, a light ring, a dark 3×3
        // centre, at three corners.
        for (left, top) in [(0, 0), (width - 7, 0), (0, width - 7)] {
            for dy in 0..7 {
                for dx in 0..7 {
                    let ring = dx == 0 || dy == 0 || dx == 6 || dy == 6;
                    let centre = (2..=4).contains(&dx) && (2..=4).contains(&dy);
                    assert_eq!(
                        modules.is_dark(QUIET + left + dx, QUIET + top + dy),
                        ring || centre,
                        "({left},{top}) + ({dx},{dy})"
                    );
                }
            }
        }
        for i in 0..modules.size {
            for margin in 0..QUIET {
                assert!(!modules.is_dark(i, margin) && !modules.is_dark(margin, i));
                let far = modules.size - 1 - margin;
                assert!(!modules.is_dark(i, far) && !modules.is_dark(far, i));
            }
        }
    }

    #[test]
    fn different_texts_make_different_codes_and_too_long_makes_none() {
        let other = URI.replace("alice", "bob");
        assert_ne!(
            Modules::of(URI).unwrap().dark,
            Modules::of(&other).unwrap().dark
        );
        let huge = "x".repeat(8000);
        assert!(svg(&huge).is_none() && terminal(&huge).is_none());
    }
}
