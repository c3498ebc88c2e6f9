//! The two chart kinds the figures are made of, generic over the plotters backend so the PNG and
//! the SVG of a figure come from the same code: per-epoch lines (one colour per run, with a
//! legend) and points with their per-x mean (a metric against a swept parameter).

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::draw::font::FAMILY;
use crate::number;

/// Legend entries beyond this many would cover the chart; the rest are summarised in a note.
pub(super) const LEGEND_MAX: usize = 15;

/// One run's curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// The run was stopped where its curve ends (by successive halving): a × marks the end.
    pub stopped: bool,
}

/// A shaded range per x (the spread of runs that have no line of their own).
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub label: String,
    /// (x, low, high), sorted by x.
    pub points: Vec<(f64, f64, f64)>,
}

/// How x values are placed.
#[derive(Debug, Clone, PartialEq)]
pub enum XAxis {
    /// Whole numbers only on the ticks.
    Epoch,
    Linear,
    /// log10 coordinates; `zero_at` is where 0 is drawn (a decade left of the smallest positive
    /// value), since 0 has no place on a log axis.
    Log {
        zero_at: Option<f64>,
    },
}

impl XAxis {
    /// Log when the positive values span at least two decades and none is negative.
    pub(crate) fn for_values(xs: &[f64]) -> XAxis {
        let finite: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        let pos: Vec<f64> = finite.iter().copied().filter(|&x| x > 0.0).collect();
        if finite.iter().any(|&x| x < 0.0) || pos.is_empty() {
            return XAxis::Linear;
        }
        let (lo, hi) = pos
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        if (hi / lo).log10() < 2.0 - 1e-9 {
            return XAxis::Linear;
        }
        let zero_at = finite.contains(&0.0).then(|| lo.log10().floor() - 1.0);
        XAxis::Log { zero_at }
    }

    pub fn map(&self, x: f64) -> f64 {
        match self {
            XAxis::Log { zero_at: Some(z) } if x == 0.0 => *z,
            XAxis::Log { .. } => x.log10(),
            _ => x,
        }
    }

    /// Said next to the axis name, so a reader knows how to read it.
    pub(crate) fn note(&self) -> &'static str {
        match self {
            XAxis::Log { zero_at: Some(_) } => {
                " (log scale; 0 is drawn at the tick labelled 0, left of the break)"
            }
            XAxis::Log { zero_at: None } => " (log scale)",
            _ => "",
        }
    }

    fn label(&self, v: f64) -> String {
        let whole = (v - v.round()).abs() < 1e-9;
        match self {
            XAxis::Epoch if whole => format!("{}", v.round()),
            XAxis::Epoch => String::new(),
            XAxis::Linear => number::number(v),
            XAxis::Log { zero_at } if whole && zero_at.is_some_and(|z| (z - v).abs() < 1e-9) => {
                "0".into()
            }
            XAxis::Log { .. } if whole => format!("1e{}", v.round()),
            XAxis::Log { .. } => String::new(),
        }
    }
}

/// tab10, then plotters' 99-colour palette.
pub(super) fn colour(i: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    match TAB10.get(i) {
        Some(&(r, g, b)) => RGBColor(r, g, b),
        None => {
            let c = Palette99::pick(i - TAB10.len()).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}

type Res<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn range(values: impl Iterator<Item = f64>, pad_fraction: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * pad_fraction
    } else {
        lo.abs().max(1.0) * 0.05
    };
    (lo - pad, hi + pad)
}

/// The finite stretches of a curve: a NaN / inf value (a diverged epoch) breaks the line.
fn segments(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() {
            out.last_mut().unwrap().push((x, y));
        } else if !out.last().unwrap().is_empty() {
            out.push(Vec::new());
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// A panel of lines over epochs or a swept value: what [`lines`] draws.
pub(super) struct Lines<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub axis: &'a XAxis,
    pub series: &'a [Series],
    /// The min–max band of the runs not drawn as lines.
    pub band: Option<&'a Band>,
    pub legend: bool,
}

// Long: one plotters chart (ranges, mesh, band, series, legend) in drawing order.
pub(super) fn lines<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Lines) -> Res<DB> {
    let Lines {
        title,
        x_desc,
        y_desc,
        axis,
        series,
        band,
        legend,
    } = *panel;
    let all = || series.iter().flat_map(|s| s.points.iter());
    let band_points = || band.into_iter().flat_map(|b| b.points.iter());
    let (x0, x1) = range(
        all()
            .map(|p| axis.map(p.0))
            .chain(band_points().map(|p| axis.map(p.0))),
        0.02,
    );
    let (y0, y1) = range(
        all()
            .map(|p| p.1)
            .chain(band_points().flat_map(|p| [p.1, p.2])),
        0.05,
    );
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 22))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let fmt = |v: &f64| axis.label(*v);
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&fmt)
        .y_label_formatter(&|v: &f64| number::number(*v))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    if let Some(b) = band.filter(|b| !b.points.is_empty()) {
        // upper edge left to right, then the lower edge back
        let outline: Vec<(f64, f64)> = b
            .points
            .iter()
            .map(|&(x, _, hi)| (axis.map(x), hi))
            .chain(b.points.iter().rev().map(|&(x, lo, _)| (axis.map(x), lo)))
            .collect();
        let grey = RGBColor(120, 120, 120);
        let drawn = chart.draw_series(std::iter::once(Polygon::new(
            outline,
            grey.mix(0.25).filled(),
        )))?;
        if legend {
            drawn.label(b.label.as_str()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], grey.mix(0.25).filled())
            });
        }
    }
    for (i, s) in series.iter().enumerate() {
        let c = colour(i);
        let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (axis.map(x), y)).collect();
        for (j, seg) in segments(&pts).into_iter().enumerate() {
            if seg.len() == 1 {
                chart.draw_series(std::iter::once(Circle::new(seg[0], 3, c.filled())))?;
            }
            let drawn = chart.draw_series(LineSeries::new(seg, c.stroke_width(2)))?;
            if legend && j == 0 && i < LEGEND_MAX {
                drawn.label(s.label.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            }
        }
        if let Some(&end) = pts
            .iter()
            .rev()
            .find(|p| p.0.is_finite() && p.1.is_finite())
        {
            if s.stopped {
                chart.draw_series(std::iter::once(Cross::new(end, 6, c.stroke_width(3))))?;
            }
        }
    }
    if legend && series.iter().any(|s| s.stopped) {
        // one legend entry says what the × at a curve's end means
        let grey = RGBColor(60, 60, 60);
        chart
            .draw_series(std::iter::empty::<Cross<(f64, f64), i32>>())?
            .label("stopped by halving")
            .legend(move |(x, y)| Cross::new((x + 10, y), 5, grey.stroke_width(2)));
    }
    if legend && (!series.is_empty() || band.is_some()) {
        chart
            .configure_series_labels()
            .position(legend_corner(series, axis, (x0, x1), (y0, y1)))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .label_font((FAMILY, 13))
            .draw()?;
    }
    if legend && series.len() > LEGEND_MAX {
        let note = format!("legend: the first {LEGEND_MAX} of {} runs", series.len());
        area.draw(&Text::new(
            note,
            (80, area.dim_in_pixel().1 as i32 - 18),
            (FAMILY, 13).into_font().color(&BLACK),
        ))?;
    }
    Ok(())
}

/// The corner whose legend-sized box covers the fewest curve points.
fn legend_corner(
    series: &[Series],
    axis: &XAxis,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> SeriesLabelPosition {
    let entries = series.len().min(LEGEND_MAX) as f64;
    let (w, h) = (0.4, (0.05 + 0.045 * entries).min(0.9));
    let corners = [
        (SeriesLabelPosition::UpperRight, 1.0 - w, 1.0 - h),
        (SeriesLabelPosition::UpperLeft, 0.0, 1.0 - h),
        (SeriesLabelPosition::LowerRight, 1.0 - w, 0.0),
        (SeriesLabelPosition::LowerLeft, 0.0, 0.0),
    ];
    let inside = |&(_, cx, cy): &(SeriesLabelPosition, f64, f64)| {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|&&(x, y)| {
                let (u, v) = ((axis.map(x) - x0) / (x1 - x0), (y - y0) / (y1 - y0));
                (cx..=cx + w).contains(&u) && (cy..=cy + h).contains(&v)
            })
            .count()
    };
    let best = corners
        .iter()
        .min_by_key(|c| inside(c))
        .expect("four corners");
    best.0.clone()
}

/// Every run as a point, and the mean over runs (seeds) at each x as a line.
pub(super) fn scatter_mean<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    axis: &XAxis,
    points: &[(f64, f64)],
) -> Res<DB> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .map(|&(x, y)| (axis.map(x), y))
        .collect();
    let (x0, x1) = match axis {
        XAxis::Log { .. } => {
            let (a, b) = range(pts.iter().map(|p| p.0), 0.0);
            (a - 0.4, b + 0.4)
        }
        _ => range(pts.iter().map(|p| p.0), 0.05),
    };
    let (y0, y1) = range(pts.iter().map(|p| p.1), 0.08);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 22))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let fmt = |v: &f64| axis.label(*v);
    let decades = ((x1 - x0).ceil() as usize + 1).clamp(2, 12);
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(if matches!(axis, XAxis::Log { .. }) {
            decades
        } else {
            10
        })
        .x_label_formatter(&fmt)
        .y_label_formatter(&|v: &f64| number::number(*v))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 13))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    if let XAxis::Log { zero_at: Some(z) } = axis {
        // the axis break between 0 and the first decade
        let x = z + 0.5;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, y0), (x, y1)],
            RGBColor(150, 150, 150),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            "//",
            (x, y0),
            (FAMILY, 16).into_font(),
        )))?;
    }
    let mut xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let means: Vec<(f64, f64)> = xs
        .iter()
        .map(|&x| {
            let ys: Vec<f64> = pts.iter().filter(|p| p.0 == x).map(|p| p.1).collect();
            (x, ys.iter().sum::<f64>() / ys.len() as f64)
        })
        .collect();
    let c = colour(0);
    chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.mix(0.5).filled())))?;
    chart.draw_series(LineSeries::new(means.iter().copied(), c.stroke_width(2)))?;
    chart.draw_series(means.iter().map(|&p| Circle::new(p, 5, c.filled())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_when_values_span_decades_with_zero_a_decade_left() {
        assert_eq!(XAxis::for_values(&[0.1, 0.2, 0.5]), XAxis::Linear);
        assert_eq!(XAxis::for_values(&[-1.0, 1.0, 1000.0]), XAxis::Linear);
        assert_eq!(
            XAxis::for_values(&[1e-4, 1e-2]),
            XAxis::Log { zero_at: None }
        );
        let a = XAxis::for_values(&[0.0, 1e-4, 3e-4, 1e-2]);
        assert_eq!(
            XAxis::for_values(&[0.0, 3e-4, 1e-3]),
            XAxis::Linear,
            "half a decade is read better linearly"
        );
        assert_eq!(
            a,
            XAxis::Log {
                zero_at: Some(-5.0)
            }
        );
        assert_eq!((a.map(0.0), a.map(1e-2)), (-5.0, -2.0));
        assert_eq!(
            (a.label(-5.0), a.label(-3.0), a.label(-3.5)),
            ("0".into(), "1e-3".into(), String::new())
        );
    }

    /// A panel of one curve as SVG.
    fn svg_of(stopped: bool) -> String {
        crate::draw::font::register();
        let series = [Series {
            label: "lr=0.1".into(),
            points: vec![(1.0, 0.9), (2.0, 0.7), (3.0, f64::NAN)],
            stopped,
        }];
        let panel = Lines {
            title: "t",
            x_desc: "epoch",
            y_desc: "loss",
            axis: &XAxis::Epoch,
            series: &series,
            band: None,
            legend: true,
        };
        let mut svg = String::new();
        let area = SVGBackend::with_string(&mut svg, (400, 300)).into_drawing_area();
        lines(&area, &panel).unwrap();
        area.present().unwrap();
        drop(area);
        svg
    }

    #[test]
    fn a_stopped_curve_ends_with_a_cross_that_the_legend_names() {
        let (plain, stopped) = (svg_of(false), svg_of(true));
        assert!(!plain.contains("stopped by halving"));
        assert!(stopped.contains("stopped by halving"));
        // the × at the last finite point (2, 0.7), and the one in the legend: two lines each
        let lines = |s: &str| s.matches("<line").count();
        assert_eq!(lines(&stopped), lines(&plain) + 4, "{stopped}");
    }

    #[test]
    fn non_finite_values_break_lines() {
        let s = segments(&[(1.0, 1.0), (2.0, f64::NAN), (3.0, 2.0), (4.0, 3.0)]);
        assert_eq!(s, vec![vec![(1.0, 1.0)], vec![(3.0, 2.0), (4.0, 3.0)]]);
    }
}
