//! Pictures of long work, as SVG: `switchsim bench --plot` draws each path's single-stream
//! throughput and ping round trip, switchd's paths highlighted and the goals marked on the
//! paths they judge; `switchsim run --plot` draws how long new endpoints took to be known on
//! every host and crashed hosts to be declared down, as distributions with their goals.

use std::path::Path;

use benches::dataplane::{Figures, Goal, Metric, Results};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// switchd's paths.
const OURS: RGBColor = RGBColor(230, 120, 20);
/// The peers' paths.
const PEER: RGBColor = RGBColor(125, 145, 175);
/// Goals.
const GOAL: RGBColor = RGBColor(200, 30, 30);
/// Height of one path's row.
const ROW: u32 = 30;

fn err(e: impl std::fmt::Display) -> String {
    format!("cannot draw the plot: {e}")
}

/// Draws `r` (a run, or the runs' medians) with `goals` into an SVG file at `path`: one
/// row per path, throughput on the left and round trip on the right.
///
/// # Errors
/// The file cannot be written, in words.
pub fn bench_svg(path: &Path, r: &Results, goals: &[Goal]) -> Result<(), String> {
    let rows: Vec<&Figures> = r.same_host.iter().chain(&r.cross_host).collect();
    if rows.is_empty() {
        return Err("cannot draw the plot: no path was measured".into());
    }
    let n = rows.len() as i32;
    let height = 140 + ROW * rows.len() as u32;
    let root = SVGBackend::new(path, (1280, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let title = match &r.tcp {
        Some(tcp) => format!("switchsim bench: sandbox to sandbox, TCP with {}", tcp.used),
        None => "switchsim bench: sandbox to sandbox".to_string(),
    };
    let (head, body) = root.split_vertically(80);
    legend(&head, &title)?;
    let (left, right) = body.split_horizontally(820);
    // Row i (first path at the top) is segment n-1-i.
    let row = |name: &str| rows.iter().position(|f| f.name == name).map(|i| n - 1 - i as i32);
    let names: Vec<String> = rows.iter().rev().map(|f| f.name.clone()).collect();
    let label = move |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let panels = [
        (&left, "1 TCP stream, Gbit/s (more is better)", Metric::Tcp1Gbps, 330),
        (&right, "ping round trip, us (less is better)", Metric::RttUs, 10),
    ];
    for (area, caption, metric, label_width) in panels {
        let value = |f: &Figures| match metric {
            Metric::Tcp1Gbps => f.tcp1_bps / 1e9,
            Metric::RttUs => f.rtt_ms * 1000.0,
        };
        let marks: Vec<(i32, f64)> = goals
            .iter()
            .filter_map(|g| g.mark.as_ref())
            .filter(|m| m.metric == metric)
            .filter_map(|m| Some((row(&m.path)?, m.at)))
            .collect();
        let most = rows
            .iter()
            .map(|f| value(f))
            .chain(marks.iter().map(|(_, at)| *at))
            .fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .caption(caption, ("sans-serif", 16))
            .x_label_area_size(30)
            .y_label_area_size(label_width)
            .build_cartesian_2d(0.0..most * 1.1 + f64::EPSILON, (0..n - 1).into_segmented())
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.disable_y_mesh()
            .light_line_style(WHITE)
            .y_labels(rows.len())
            .x_labels(8)
            .x_label_formatter(&|v| format!("{v:.0}"));
        if metric == Metric::Tcp1Gbps {
            mesh.y_label_formatter(&label);
        } else {
            mesh.y_label_formatter(&|_| String::new());
        }
        mesh.draw().map_err(err)?;
        for ours in [true, false] {
            let bars = rows
                .iter()
                .enumerate()
                .filter(|(_, f)| f.name.starts_with("switchd") == ours)
                .map(|(i, f)| {
                    let y = n - 1 - i as i32;
                    let colour = if ours { OURS } else { PEER };
                    let mut bar = Rectangle::new(
                        [(0.0, SegmentValue::Exact(y)), (value(f), SegmentValue::Exact(y + 1))],
                        colour.filled(),
                    );
                    bar.set_margin(5, 5, 0, 0);
                    bar
                });
            chart.draw_series(bars).map_err(err)?;
        }
        let ticks = marks.iter().map(|(y, at)| {
            PathElement::new(
                vec![(*at, SegmentValue::Exact(*y)), (*at, SegmentValue::Exact(*y + 1))],
                GOAL.stroke_width(3),
            )
        });
        chart.draw_series(ticks).map_err(err)?;
    }
    root.present().map_err(err)
}

/// The bench plot's title and, under it, what its colours and marks mean.
fn legend(head: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, title: &str) -> Result<(), String> {
    let (w, _) = head.dim_in_pixel();
    let centred = ("sans-serif", 22)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    head.draw(&Text::new(title.to_string(), (w as i32 / 2, 10), centred))
        .map_err(err)?;
    let text = ("sans-serif", 14)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let y = 58;
    let mut x = 200;
    for (swatch, words) in [
        (Some(OURS), "switchd"),
        (Some(PEER), "peers"),
        (None, "goal: throughput reaches the mark, round trip stays within it"),
    ] {
        match swatch {
            Some(c) => head.draw(&Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled())),
            None => head.draw(&PathElement::new(
                vec![(x + 7, y - 9), (x + 7, y + 9)],
                GOAL.stroke_width(3),
            )),
        }
        .map_err(err)?;
        head.draw(&Text::new(words.to_string(), (x + 22, y), text.clone()))
            .map_err(err)?;
        x += 40 + 9 * words.len() as i32;
    }
    Ok(())
}

/// What `switchsim run --plot` draws: each new endpoint's time until every live host knew it,
/// and each crash's time until every live host declared it, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct RunSamples {
    /// The scenario's name, seed and host count, for the title.
    pub title: String,
    /// Route convergence of each measured endpoint, ms.
    pub convergence_ms: Vec<f64>,
    /// Failure detection of each crash, ms.
    pub detection_ms: Vec<f64>,
}

/// Draws `s` into an SVG file at `path`: the cumulative distribution of each measure, with
/// its goal (1.5 s for the 99th percentile of convergence, 5 s for every detection).
///
/// # Errors
/// The file cannot be written, in words.
pub fn run_svg(path: &Path, s: &RunSamples) -> Result<(), String> {
    let root = SVGBackend::new(path, (1280, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(&s.title, ("sans-serif", 22)).map_err(err)?;
    let (left, right) = root.split_horizontally(640);
    let panels = [
        (
            &left,
            "new endpoint known on every host",
            &s.convergence_ms,
            1500.0,
            "goal: 99% within 1.5 s",
            0.99,
        ),
        (
            &right,
            "crashed host declared down everywhere",
            &s.detection_ms,
            5000.0,
            "goal: all within 5 s",
            1.0,
        ),
    ];
    for (area, caption, samples, goal_ms, goal_label, share) in panels {
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let most = sorted.last().copied().unwrap_or(0.0).max(goal_ms) * 1.1;
        let caption = format!("{caption} ({} measured)", sorted.len());
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .caption(caption, ("sans-serif", 16))
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..most, 0.0..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("milliseconds")
            .y_desc("share done")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .draw()
            .map_err(err)?;
        // The empirical distribution: a step up at each sample.
        let total = sorted.len() as f64;
        let steps = sorted
            .iter()
            .enumerate()
            .flat_map(|(i, v)| [(*v, i as f64 / total), (*v, (i + 1) as f64 / total)]);
        chart
            .draw_series(LineSeries::new(steps, OURS.stroke_width(2)))
            .map_err(err)?
            .label("switchd's control plane")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], OURS.stroke_width(2)));
        // The goal: at least `share` of the samples left of `goal_ms`.
        chart
            .draw_series([
                PathElement::new(vec![(goal_ms, 0.0), (goal_ms, share)], GOAL.stroke_width(2)),
                PathElement::new(vec![(0.0, share), (goal_ms, share)], GOAL.stroke_width(1)),
            ])
            .map_err(err)?
            .label(goal_label)
            .legend(|(x, y)| PathElement::new(vec![(x + 6, y - 7), (x + 6, y + 7)], GOAL.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use benches::dataplane::goals;

    fn path(name: &str, gbps: f64, rtt_us: f64) -> Figures {
        Figures {
            name: name.into(),
            tcp1_bps: gbps * 1e9,
            tcp4_bps: None,
            udp64_pps: None,
            rtt_ms: rtt_us / 1000.0,
            cpu_s_per_gb: 1.0,
        }
    }

    #[test]
    fn a_bench_plot_names_every_path_and_marks_the_goals() {
        let r = Results {
            same_host: vec![
                path("kernel bridge", 30.0, 40.0),
                path("switchd bridge network", 24.0, 60.0),
                path("OVS userspace, tap + TSO", 12.0, 80.0),
            ],
            cross_host: vec![
                path("switchd overlay (VXLAN)", 9.0, 90.0),
                path("kernel VXLAN", 15.0, 70.0),
            ],
            ..Results::default()
        };
        let g = goals(&r);
        let marked: Vec<_> = g.iter().filter_map(|g| g.mark.as_ref()).collect();
        // 0.70 x the kernel bridge on our bridge's bar; its ping within 30 us of the kernel's.
        assert!(marked
            .iter()
            .any(|m| m.path == "switchd bridge network" && m.metric == Metric::Tcp1Gbps && (m.at - 21.0).abs() < 1e-9));
        assert!(marked
            .iter()
            .any(|m| m.metric == Metric::RttUs && (m.at - 70.0).abs() < 1e-9));
        let file = std::env::temp_dir().join(format!("switchsim-bench-{}.svg", std::process::id()));
        bench_svg(&file, &r, &g).unwrap();
        let svg = std::fs::read_to_string(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        for name in [
            "kernel bridge",
            "switchd overlay (VXLAN)",
            "goal: throughput reaches the mark",
        ] {
            assert!(svg.contains(name), "{name} missing");
        }
        assert!(svg.contains("#E67814"), "switchd's bars are highlighted");
        let empty = bench_svg(&file, &Results::default(), &[]).unwrap_err();
        assert!(empty.contains("no path was measured"), "{empty}");
    }

    #[test]
    fn a_run_plot_draws_both_distributions() {
        let s = RunSamples {
            title: "switchsim run crash: 3 hosts, seed 1".into(),
            convergence_ms: vec![120.0, 80.0, 300.0],
            detection_ms: vec![],
        };
        let file = std::env::temp_dir().join(format!("switchsim-run-{}.svg", std::process::id()));
        run_svg(&file, &s).unwrap();
        let svg = std::fs::read_to_string(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        assert!(svg.contains("(3 measured)") && svg.contains("(0 measured)"), "{svg}");
    }
}
