//! A small inline-SVG chart renderer for the HTML report: line and bar series on linear,
//! logarithmic or "nines" (percentile) axes, with ticks, grid, legend and hover titles.
//!
//! It produces self-contained markup (no scripts, no external fonts or styles) so a report is
//! one file that opens anywhere, including air-gapped machines. Every text it is given is
//! escaped.

use std::fmt::Write;

/// How an axis maps values to positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Evenly spaced values, from zero.
    Linear,
    /// Powers of ten evenly spaced.
    Log,
    /// Percentiles by their nines: 90, 99, 99.9 evenly spaced.
    Nines,
}

impl Scale {
    fn map(self, value: f64) -> f64 {
        match self {
            Self::Linear => value,
            Self::Log => value.max(1e-9).log10(),
            Self::Nines => -(1.0 - value / 100.0).max(1e-9).log10(),
        }
    }

    fn unmap(self, position: f64) -> f64 {
        match self {
            Self::Linear => position,
            Self::Log => 10f64.powf(position),
            Self::Nines => 100.0 * (1.0 - 10f64.powf(-position)),
        }
    }
}

/// What a series draws.
#[derive(Debug, Clone)]
pub enum Shape {
    /// A polyline through the points.
    Line(Vec<(f64, f64)>),
    /// Bars spanning `x0..x1` up to `y`.
    Bars(Vec<(f64, f64, f64)>),
}

/// One named series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// Dashed line.
    pub dashed: bool,
    /// The data.
    pub shape: Shape,
}

/// A chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Heading above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// X scale.
    pub x_scale: Scale,
    /// Y scale.
    pub y_scale: Scale,
    /// Formats a tick value of the x axis.
    pub x_format: fn(f64) -> String,
    /// Formats a tick value of the y axis.
    pub y_format: fn(f64) -> String,
    /// The series.
    pub series: Vec<Series>,
}

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 330.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 50.0;

/// Escapes text for XML content and attributes.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Tick positions (in mapped space) for the range `low..=high` of mapped values.
fn ticks(scale: Scale, low: f64, high: f64) -> Vec<f64> {
    match scale {
        Scale::Linear => {
            let span = (high - low).max(1e-9);
            let raw = span / 6.0;
            let magnitude = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * magnitude)
                .find(|s| span / s <= 7.0)
                .unwrap_or(magnitude * 10.0);
            let mut tick = (low / step).ceil() * step;
            let mut out = Vec::new();
            while tick <= high + step * 1e-6 {
                out.push(tick);
                tick += step;
            }
            out
        }
        Scale::Log | Scale::Nines => {
            let mut out: Vec<f64> = (low.ceil() as i64..=high.floor() as i64)
                .map(|p| p as f64)
                .collect();
            if scale == Scale::Log && out.len() < 3 {
                // Fewer than three decades: add the 2s and 5s in between.
                let mut finer = Vec::new();
                for decade in (low.floor() as i64)..=(high.ceil() as i64) {
                    for m in [1.0f64, 2.0, 5.0] {
                        let position = decade as f64 + m.log10();
                        if position >= low - 1e-9 && position <= high + 1e-9 {
                            finer.push(position);
                        }
                    }
                }
                out = finer;
            }
            out
        }
    }
}

impl Chart {
    fn bounds(&self) -> Option<((f64, f64), (f64, f64))> {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for series in &self.series {
            match &series.shape {
                Shape::Line(points) => {
                    for &(x, y) in points {
                        xs.push(self.x_scale.map(x));
                        ys.push(self.y_scale.map(y));
                    }
                }
                Shape::Bars(bars) => {
                    for &(x0, x1, y) in bars {
                        xs.push(self.x_scale.map(x0));
                        xs.push(self.x_scale.map(x1));
                        ys.push(self.y_scale.map(y));
                    }
                }
            }
        }
        let finite = |v: &Vec<f64>| {
            v.iter()
                .copied()
                .filter(|f| f.is_finite())
                .fold(None, |acc: Option<(f64, f64)>, v| {
                    Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
                })
        };
        let (mut x, mut y) = (finite(&xs)?, finite(&ys)?);
        if self.y_scale == Scale::Linear {
            y.0 = y.0.min(0.0);
            y.1 = if y.1 <= y.0 { y.0 + 1.0 } else { y.1 * 1.08 };
        } else {
            y = (y.0.floor(), y.1.ceil().max(y.0.floor() + 1.0));
        }
        if self.x_scale == Scale::Linear {
            // Time axes read best from zero.
            x.0 = x.0.min(0.0);
        }
        if x.1 <= x.0 {
            x.1 = x.0 + 1.0;
        }
        if self.x_scale == Scale::Log {
            x = (x.0.floor(), x.1.ceil());
        }
        Some((x, y))
    }

    /// Renders the chart as an `<svg>` element; an empty note when there is no data.
    pub fn render(&self) -> String {
        let Some(((x0, x1), (y0, y1))) = self.bounds() else {
            return format!("<p class=\"nodata\">{}: no data</p>", escape(&self.title));
        };
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let px = |x: f64| LEFT + (self.x_scale.map(x) - x0) / (x1 - x0) * plot_w;
        let py = |y: f64| TOP + plot_h - (self.y_scale.map(y) - y0) / (y1 - y0) * plot_h;
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" class=\"chart\">\
             <title>{}</title><text x=\"{LEFT}\" y=\"22\" class=\"title\">{}</text>",
            escape(&self.title),
            escape(&self.title)
        );
        for tick in ticks(self.x_scale, x0, x1) {
            let x = LEFT + (tick - x0) / (x1 - x0) * plot_w;
            let _ = write!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" class=\"grid\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
                TOP + plot_h,
                TOP + plot_h + 16.0,
                escape(&(self.x_format)(self.x_scale.unmap(tick)))
            );
        }
        for tick in ticks(self.y_scale, y0, y1) {
            let y = TOP + plot_h - (tick - y0) / (y1 - y0) * plot_h;
            let _ = write!(
                svg,
                "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                escape(&(self.y_format)(self.y_scale.unmap(tick)))
            );
        }
        let _ = write!(
            svg,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" class=\"frame\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"middle\">{}</text>\
             <text x=\"16\" y=\"{:.1}\" class=\"label\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\">{}</text>",
            LEFT + plot_w / 2.0,
            HEIGHT - 10.0,
            escape(&self.x_label),
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        for series in &self.series {
            self.render_series(&mut svg, series, &px, &py, TOP + plot_h);
        }
        self.render_legend(&mut svg);
        svg.push_str("</svg>");
        svg
    }

    fn render_series(
        &self,
        svg: &mut String,
        series: &Series,
        px: &dyn Fn(f64) -> f64,
        py: &dyn Fn(f64) -> f64,
        base: f64,
    ) {
        let name = escape(&series.name);
        match &series.shape {
            Shape::Line(points) => {
                let path: Vec<String> = points
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                    .collect();
                let dash = if series.dashed {
                    " stroke-dasharray=\"6 4\""
                } else {
                    ""
                };
                let _ = write!(
                    svg,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash}/>",
                    path.join(" "),
                    series.color
                );
                if points.len() <= 120 {
                    for &(x, y) in points {
                        let _ = write!(
                            svg,
                            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"><title>{name}: {} at {}</title></circle>",
                            px(x),
                            py(y),
                            series.color,
                            escape(&(self.y_format)(y)),
                            escape(&(self.x_format)(x))
                        );
                    }
                }
            }
            Shape::Bars(bars) => {
                for &(x0, x1, y) in bars {
                    let (left, right, top) = (px(x0), px(x1), py(y));
                    let _ = write!(
                        svg,
                        "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" fill-opacity=\"0.55\" stroke=\"{}\">\
                         <title>{name}: {} in {}–{}</title></rect>",
                        (right - left - 1.0).max(0.5),
                        (base - top).max(0.0),
                        series.color,
                        series.color,
                        escape(&(self.y_format)(y)),
                        escape(&(self.x_format)(x0)),
                        escape(&(self.x_format)(x1))
                    );
                }
            }
        }
    }

    fn render_legend(&self, svg: &mut String) {
        let mut x = WIDTH - RIGHT;
        for series in self.series.iter().rev() {
            let width = 26.0 + 6.5 * series.name.chars().count() as f64;
            x -= width + 10.0;
            // The key repeats the series' own mark: a bar swatch, or a solid or dashed line.
            let key = match series.shape {
                Shape::Bars(_) => format!(
                    "<rect x=\"{x:.1}\" y=\"28\" width=\"18\" height=\"9\" fill=\"{}\" fill-opacity=\"0.55\"/>",
                    series.color
                ),
                Shape::Line(_) => format!(
                    "<line x1=\"{x:.1}\" y1=\"32\" x2=\"{:.1}\" y2=\"32\" stroke=\"{}\" stroke-width=\"2.5\"{}/>",
                    x + 18.0,
                    series.color,
                    if series.dashed { " stroke-dasharray=\"5 3\"" } else { "" }
                ),
            };
            let _ = write!(
                svg,
                "{key}<text x=\"{:.1}\" y=\"36\" class=\"legend\">{}</text>",
                x + 22.0,
                escape(&series.name)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(value: f64) -> String {
        format!("{value}")
    }

    #[test]
    fn renders_lines_and_escapes() {
        let chart = Chart {
            title: "a < b".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            x_format: plain,
            y_format: plain,
            series: vec![Series {
                name: "s&p".into(),
                color: "#123456",
                dashed: false,
                shape: Shape::Line(vec![(0.0, 10.0), (1.0, 1000.0)]),
            }],
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("a &lt; b"));
        assert!(svg.contains("s&amp;p"));
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn empty_chart_says_so() {
        let chart = Chart {
            title: "empty".into(),
            x_label: String::new(),
            y_label: String::new(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            x_format: plain,
            y_format: plain,
            series: Vec::new(),
        };
        assert!(chart.render().contains("no data"));
    }

    #[test]
    fn nines_scale_round_trips() {
        for p in [0.0, 90.0, 99.0, 99.9] {
            assert!((Scale::Nines.unmap(Scale::Nines.map(p)) - p).abs() < 1e-9);
        }
        assert_eq!(ticks(Scale::Nines, 0.0, 3.0), vec![0.0, 1.0, 2.0, 3.0]);
    }
}
