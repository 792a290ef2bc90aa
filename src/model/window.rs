//! [`Window`]: a rectangle of the image plane, the one type for "where to evaluate" everywhere
//! (plans, renders, the viewport, exports, recipes and the CLI).

/// The rectangle `[x0, x1] x [y0, y1]` of the plane, x to the right and y up; the training
/// square is `[-1, 1]²` ([`Window::TRAINING`]). Written (CLI, recipes, settings) as the corners
/// `x0,y0,x1,y1`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "[f64; 4]", into = "[f64; 4]")]
pub struct Window {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Window {
    /// The square the model was trained on.
    pub const TRAINING: Window = Window::new(-1.0, -1.0, 1.0, 1.0);

    /// From its lower-left `(x0, y0)` and upper-right `(x1, y1)` corners.
    pub const fn new(x0: f64, y0: f64, x1: f64, y1: f64) -> Self {
        Self { x0, y0, x1, y1 }
    }

    /// The corners `[x0, y0, x1, y1]`, as written.
    pub const fn corners(self) -> [f64; 4] {
        [self.x0, self.y0, self.x1, self.y1]
    }

    pub fn width(self) -> f64 {
        self.x1 - self.x0
    }

    pub fn height(self) -> f64 {
        self.y1 - self.y0
    }

    /// Finite, with `x1 > x0` and `y1 > y0`.
    pub fn is_valid(self) -> bool {
        self.corners().iter().all(|v| v.is_finite()) && self.x1 > self.x0 && self.y1 > self.y0
    }
}

impl From<[f64; 4]> for Window {
    /// From the corners `[x0, y0, x1, y1]`.
    fn from(c: [f64; 4]) -> Self {
        Self::new(c[0], c[1], c[2], c[3])
    }
}

impl From<Window> for [f64; 4] {
    fn from(w: Window) -> Self {
        w.corners()
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{},{}", self.x0, self.y0, self.x1, self.y1)
    }
}

impl std::str::FromStr for Window {
    type Err = String;

    /// `x0,y0,x1,y1` with `x1 > x0`, `y1 > y0`, all finite.
    fn from_str(s: &str) -> Result<Self, String> {
        let v: Vec<f64> = s
            .split(',')
            .map(|t| t.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("bad window {s:?}: expected x0,y0,x1,y1"))?;
        match v.as_slice() {
            &[x0, y0, x1, y1] if Window::new(x0, y0, x1, y1).is_valid() => {
                Ok(Window::new(x0, y0, x1, y1))
            }
            _ => Err(format!(
                "bad window {s:?}: expected x0,y0,x1,y1, finite, with x1 > x0 and y1 > y0"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_serialises_as_corners() {
        let w: Window = "-2,-1,3,0.5".parse().unwrap();
        assert_eq!(w, Window::new(-2.0, -1.0, 3.0, 0.5));
        assert_eq!(w.to_string().parse::<Window>().unwrap(), w);
        assert_eq!(ron::to_string(&w).unwrap(), "(-2.0,-1.0,3.0,0.5)");
        let back: Window = ron::from_str("(-2.0,-1.0,3.0,0.5)").unwrap();
        assert_eq!(back, w);
        for bad in ["1,1,0,2", "0,0,1", "0,0,nan,1", "a,b,c,d", "0,0,inf,1"] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }
}
