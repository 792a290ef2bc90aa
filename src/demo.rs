//! A random, untrained coordinate MLP evaluated by the kernels (the window's first picture).

use crate::gpu::{GpuContext, GpuError, GpuResult, Recorder};

/// A square window of the plane: centre and half-width. y points up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    pub cx: f64,
    pub cy: f64,
    pub half: f64,
}

impl Default for View {
    fn default() -> Self {
        Self {
            cx: 0.0,
            cy: 0.0,
            half: 1.25,
        }
    }
}

impl View {
    pub fn x0(&self) -> f64 {
        self.cx - self.half
    }
    pub fn x1(&self) -> f64 {
        self.cx + self.half
    }
    pub fn y0(&self) -> f64 {
        self.cy - self.half
    }
    pub fn y1(&self) -> f64 {
        self.cy + self.half
    }
    /// Moves the window by a fraction of its width (screen right = +x, screen down = -y) so the
    /// picture follows the pointer.
    pub fn pan(&mut self, du: f64, dv: f64) {
        self.cx -= du * 2.0 * self.half;
        self.cy += dv * 2.0 * self.half;
    }
    /// Zooms by `factor` (> 1 magnifies) keeping the point under unit screen position (u, v) fixed.
    pub fn zoom_about(&mut self, u: f64, v: f64, factor: f64) {
        let (px, py) = (
            self.x0() + u * 2.0 * self.half,
            self.y1() - v * 2.0 * self.half,
        );
        let half = (self.half / factor).clamp(1e-4, 1e3);
        let f = half / self.half;
        self.cx = px + (self.cx - px) * f;
        self.cy = py + (self.cy - py) * f;
        self.half = half;
    }
    /// Unit screen position (0..1, top-left origin) of a plane point.
    pub fn to_unit(&self, x: f64, y: f64) -> (f64, f64) {
        (
            (x - self.x0()) / (2.0 * self.half),
            (self.y1() - y) / (2.0 * self.half),
        )
    }
}

pub struct DemoInr {}

impl DemoInr {
    pub fn new(_ctx: &GpuContext, _seed: u64, _size: usize) -> GpuResult<Self> {
        Ok(Self {})
    }
    pub fn record(
        &self,
        _rec: &mut Recorder,
        _view: &View,
        _target: &wgpu::Texture,
    ) -> GpuResult<()> {
        Err(GpuError::Shape("pending".into()))
    }
}
