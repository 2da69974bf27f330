//! The report's charts, drawn with plotters' SVG backend: timelines on a true time axis (every
//! bucket of the period, ticks on calendar boundaries) and the hour-of-week map. Every label,
//! tick and figure is SVG text, so it can be found, copied and checked in the page.

use std::ops::Range;

use plotters::{
    coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged},
    prelude::*,
};

use super::{
    figures::Grid,
    time::{UtcOffset, ticks},
    units::si,
};

/// Okabe and Ito's palette, distinguishable with every common colour-vision deficiency.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(230, 159, 0),   // orange
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
];

/// Width and height of a timeline in SVG pixels (the page scales it to its column).
pub const SIZE: (u32, u32) = (960, 250);
/// At most this many bars or steps a chart: longer periods are shown in wider bins.
pub const MAX_BINS: usize = 720;
const FONT: &str = "sans-serif";

/// An axis from `lo` to `hi` whose tick marks are given (calendar boundaries, cell centres)
/// rather than chosen by plotters.
#[derive(Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = (v - self.lo) / (self.hi - self.lo).max(f64::MIN_POSITIVE);
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// How a series' buckets combine into a wider bin.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Counts: the bin holds their sum.
    Sum,
    /// Rates: the bin holds their mean.
    Mean,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Bars,
    Steps,
}

pub struct Line<'a> {
    pub name: &'a str,
    pub values: &'a [f64],
    pub mark: Mark,
}

pub struct Timeline<'a> {
    /// Drawn as the chart's caption.
    pub title: &'a str,
    /// The values' unit (`H/s`, `B`, or empty for counts).
    pub unit: &'a str,
    pub combine: Combine,
    pub lines: Vec<Line<'a>>,
}

/// How many buckets make one bin so that at most [`MAX_BINS`] are drawn: 1, or a round number.
pub fn bin_factor(buckets: usize, bucket: f64) -> usize {
    if buckets <= MAX_BINS {
        return 1;
    }
    // Prefer bins of whole calendar units (hours, days, weeks) when the bucket divides them.
    let round = [3600.0, 3.0 * 3600.0, 6.0 * 3600.0, 86_400.0, 7.0 * 86_400.0];
    let need = buckets.div_ceil(MAX_BINS);
    round
        .iter()
        .map(|r| (r / bucket).round() as usize)
        .filter(|&k| k >= need && (k as f64 * bucket - (k as f64 * bucket).round()).abs() < 1e-9)
        .min()
        .unwrap_or(need)
}

/// `values` combined into bins of `k` buckets.
fn binned(values: &[f64], k: usize, combine: Combine) -> Vec<f64> {
    values
        .chunks(k)
        .map(|c| {
            let sum: f64 = c.iter().sum();
            match combine {
                Combine::Sum => sum,
                Combine::Mean => sum / c.len() as f64,
            }
        })
        .collect()
}

/// The bin length in words, for axis labels: `hour`, `6 h`, `day`, `5 min`.
pub fn bin_words(seconds: f64) -> String {
    let s = seconds;
    if s == 3600.0 {
        "hour".into()
    } else if s == 86_400.0 {
        "day".into()
    } else if s == 604_800.0 {
        "week".into()
    } else if s % 86_400.0 == 0.0 {
        format!("{} d", s / 86_400.0)
    } else if s % 3600.0 == 0.0 {
        format!("{} h", s / 3600.0)
    } else if s % 60.0 == 0.0 {
        format!("{} min", s / 60.0)
    } else {
        format!("{s} s")
    }
}

/// One timeline as an SVG document.
pub fn timeline(grid: &Grid, offset: UtcOffset, t: &Timeline<'_>) -> String {
    let mut svg = String::new();
    let k = bin_factor(grid.ends.len(), grid.bucket);
    let bin = grid.bucket * k as f64;
    let (lo, hi) = (
        grid.start(),
        grid.start() + bin * grid.ends.len().div_ceil(k) as f64,
    );
    let lines: Vec<(&str, Vec<f64>, Mark)> = t
        .lines
        .iter()
        .map(|l| (l.name, binned(l.values, k, t.combine), l.mark))
        .collect();
    let top = lines
        .iter()
        .flat_map(|l| l.1.iter().copied())
        .fold(0.0f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let y_desc = match (t.combine, t.unit) {
        (Combine::Mean, unit) => unit.to_string(),
        (Combine::Sum, "") => format!("per {}", bin_words(bin)),
        (Combine::Sum, unit) => format!("{unit} per {}", bin_words(bin)),
    };
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let _ = root.fill(&WHITE);
        let labels = ticks(lo, hi, offset, 8);
        let x = Axis {
            lo,
            hi,
            ticks: labels.iter().map(|(t, _)| *t).collect(),
        };
        let built = ChartBuilder::on(&root)
            .caption(t.title, (FONT, 16))
            .margin(8)
            // Room for the last date label, centred on the axis's end.
            .margin_right(40)
            .x_label_area_size(34)
            .y_label_area_size(78)
            .build_cartesian_2d(x, 0.0..top);
        let Ok(mut chart) = built else {
            return svg_error(t.title);
        };
        let unit = t.unit;
        let x_label = |v: &f64| {
            labels
                .iter()
                .find(|(t, _)| (t - v).abs() < 1e-6)
                .map(|(_, l)| l.clone())
                .unwrap_or_default()
        };
        // Counts are whole: no tick at 0.5 of a flow.
        let whole = t.combine == Combine::Sum;
        let y_label = |v: &f64| {
            if whole && v.fract() != 0.0 && *v < 1000.0 {
                String::new()
            } else {
                si(*v, unit)
            }
        };
        let _ = chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(220, 220, 220))
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .y_labels(5)
            .x_desc(format!("time ({offset})"))
            .y_desc(y_desc)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .draw();
        for (i, (name, values, mark)) in lines.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let start = |j: usize| lo + j as f64 * bin;
            let drawn = match mark {
                Mark::Bars => {
                    chart.draw_series(values.iter().enumerate().filter(|(_, v)| **v > 0.0).map(
                        |(j, v)| {
                            Rectangle::new([(start(j), 0.0), (start(j + 1), *v)], colour.filled())
                        },
                    ))
                }
                Mark::Steps => chart.draw_series(std::iter::once(PathElement::new(
                    values
                        .iter()
                        .enumerate()
                        .flat_map(|(j, v)| [(start(j), *v), (start(j + 1), *v)])
                        .collect::<Vec<_>>(),
                    colour.stroke_width(2),
                ))),
            };
            if let Ok(series) = drawn {
                series.label(*name).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
                });
            }
        }
        if lines.len() > 1 {
            let _ = chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .label_font((FONT, 13))
                .draw();
        }
        let _ = root.present();
    }
    svg
}

/// Each series' share (percent) of their sum over time, as step lines: the bytes are summed into
/// the chart's bins first, so that a wide bin's share is that of its bytes.
pub fn shares(
    grid: &Grid,
    offset: UtcOffset,
    title: &str,
    series: &super::figures::Series,
) -> String {
    let k = bin_factor(grid.ends.len(), grid.bucket);
    let binned: super::figures::Series = series
        .iter()
        .map(|(name, v)| (name.clone(), binned(v, k, Combine::Sum)))
        .collect();
    // The bins' ends: every k-th bucket's start plus the bin's length.
    let wide = Grid {
        bucket: grid.bucket * k as f64,
        ends: grid
            .ends
            .chunks(k)
            .map(|c| c[0] - grid.bucket + grid.bucket * k as f64)
            .collect(),
    };
    let pct = super::figures::shares_of(&binned);
    timeline(
        &wide,
        offset,
        &Timeline {
            title,
            unit: "%",
            combine: Combine::Mean,
            lines: pct
                .iter()
                .map(|(name, v)| Line {
                    name: name.as_str(),
                    values: v,
                    mark: Mark::Steps,
                })
                .collect(),
        },
    )
}

fn svg_error(title: &str) -> String {
    format!(
        "<svg width=\"{}\" height=\"40\"><text x=\"4\" y=\"20\">{title}: nothing to draw</text></svg>",
        SIZE.0
    )
}

/// Monday first.
pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A sequential colour for `f` in 0..=1 (viridis, light to dark reversed so that more is darker
/// on paper), readable in grey scale too.
fn shade(f: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [
        (253, 231, 37),
        (94, 201, 98),
        (33, 145, 140),
        (59, 82, 139),
        (68, 1, 84),
    ];
    let x = f.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let r = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * r).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The hour-of-week map: 7 rows (Monday first) of 24 hours, each cell's colour its hashes, its
/// text the figure.
pub fn heatmap(title: &str, cells: &[[f64; 24]; 7], offset: UtcOffset) -> String {
    let mut svg = String::new();
    let max = cells.iter().flatten().copied().fold(0.0f64, f64::max);
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, 330)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let x = Axis {
            lo: 0.0,
            hi: 24.0,
            ticks: (0..24).map(|h| h as f64 + 0.5).collect(),
        };
        let y = Axis {
            lo: 0.0,
            hi: 7.0,
            ticks: (0..7).map(|d| d as f64 + 0.5).collect(),
        };
        let built = ChartBuilder::on(&root)
            .caption(title, (FONT, 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(48)
            .build_cartesian_2d(x, y);
        let Ok(mut chart) = built else {
            return svg_error(title);
        };
        let hour = |v: &f64| format!("{:02}", v.floor() as usize);
        // Monday at the top: row 0 is drawn at y 6..7.
        let day = |v: &f64| WEEKDAYS[6 - (v.floor() as usize).min(6)].to_string();
        let _ = chart
            .configure_mesh()
            .disable_mesh()
            .x_label_formatter(&hour)
            .y_label_formatter(&day)
            .x_desc(format!("hour of the day ({offset})"))
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .draw();
        let _ = chart.draw_series(cells.iter().enumerate().flat_map(|(d, row)| {
            row.iter().enumerate().map(move |(h, v)| {
                let (x0, y0) = (h as f64, 6.0 - d as f64);
                let fill = if *v > 0.0 {
                    shade(*v / max).filled()
                } else {
                    RGBColor(242, 242, 242).filled()
                };
                Rectangle::new([(x0 + 0.03, y0 + 0.05), (x0 + 0.97, y0 + 0.95)], fill)
            })
        }));
        let _ = chart.draw_series(cells.iter().enumerate().flat_map(|(d, row)| {
            row.iter()
                .enumerate()
                .filter(|(_, v)| **v > 0.0)
                .map(move |(h, v)| {
                    let dark = *v / max > 0.45;
                    let colour = if dark { WHITE } else { BLACK };
                    Text::new(
                        si(*v, ""),
                        (h as f64 + 0.5, 6.5 - d as f64),
                        (FONT, 10).into_font().color(&colour).pos(
                            plotters::style::text_anchor::Pos::new(
                                plotters::style::text_anchor::HPos::Center,
                                plotters::style::text_anchor::VPos::Center,
                            ),
                        ),
                    )
                })
        }));
        let _ = root.present();
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_round_and_few() {
        // A day of hourly buckets: drawn as they are.
        assert_eq!(bin_factor(24, 3600.0), 1);
        // A year of hourly buckets (8,760): more than 720, so 24 buckets (a day) a bin, 365 bins.
        assert_eq!(bin_factor(8760, 3600.0), 24);
        // A week of 5-minute buckets (2,016): 3 needed, an hour (12 buckets) is the next round one.
        assert_eq!(bin_factor(2016, 300.0), 12);
        assert_eq!(
            binned(&[1.0, 2.0, 3.0, 4.0, 5.0], 2, Combine::Sum),
            [3.0, 7.0, 5.0]
        );
        assert_eq!(binned(&[2.0, 4.0], 2, Combine::Mean), [3.0]);
        assert_eq!(bin_words(3600.0), "hour");
        assert_eq!(bin_words(6.0 * 3600.0), "6 h");
        assert_eq!(bin_words(300.0), "5 min");
    }

    #[test]
    fn an_empty_bucket_draws_nothing_and_ticks_are_dates() {
        // Three daily buckets, the middle one empty.
        let day = 86_400.0;
        let t0 = 1_551_398_400.0; // 2019-03-01 00:00 UTC
        let grid = Grid {
            bucket: day,
            ends: vec![t0 + day, t0 + 2.0 * day, t0 + 3.0 * day],
        };
        let v = [5.0, 0.0, 50.0];
        let svg = timeline(
            &grid,
            UtcOffset(0),
            &Timeline {
                title: "hash rate",
                unit: "H/s",
                combine: Combine::Mean,
                lines: vec![Line {
                    name: "from shares",
                    values: &v,
                    mark: Mark::Bars,
                }],
            },
        );
        assert_eq!(
            svg.matches("<rect").count(),
            1 + 2,
            "background and two bars: {svg}"
        );
        for date in ["2019-03-01", "2019-03-02", "2019-03-03", "2019-03-04"] {
            assert!(svg.contains(date), "{date} in {svg}");
        }
        // The y axis in H/s: 0 to 55 (the top bar and a tenth), labels at round figures.
        assert!(svg.contains(">\n40 H/s\n<"), "{svg}");
        // The two bars: the empty day between them is as wide as a day between two date ticks.
        let attr = |tag: &str, name: &str| -> f64 {
            let at = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            tag[at..tag[at..].find('"').unwrap() + at].parse().unwrap()
        };
        let bars: Vec<&str> = svg.split("<rect").skip(2).collect();
        let (x0, w0, h0) = (
            attr(bars[0], "x"),
            attr(bars[0], "width"),
            attr(bars[0], "height"),
        );
        let (x1, h1) = (attr(bars[1], "x"), attr(bars[1], "height"));
        let tick = |label: &str| {
            let at = svg.find(&format!(">\n{label}\n<")).unwrap();
            let tag = &svg[svg[..at].rfind("<text").unwrap()..at];
            attr(tag, "x")
        };
        let day_px = tick("2019-03-02") - tick("2019-03-01");
        // Pixels are whole: one pixel of rounding either way.
        assert!((x1 - (x0 + w0) - day_px).abs() <= 1.0, "{svg}");
        // 50 H/s against 5 H/s: ten times the height.
        assert!((h1 - 10.0 * h0).abs() <= 10.0, "{h0} {h1}");
    }
}
