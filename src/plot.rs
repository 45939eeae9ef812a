//! Figures drawn from stored runs, as SVG and PNG. Text uses DejaVu Sans compiled into the binary, so
//! rendering never depends on the machine's fonts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::harness::store::RunRecord;
use crate::spec::{Experiment, FigureKind, FigureSpec, Run, RunConfig};
use crate::ssl::history::SslHistory;
use crate::theory::{maps, TheoryConfig, TheoryHistory};

const FONT: &str = "sans-serif";
const WIDTH: u32 = 1800;
const HEIGHT: u32 = 1380;
/// Eigenvalue axis range of the flow and spectrum panels; values outside are drawn at the edge.
const LAMBDA_RANGE: (f64, f64) = (1e-3, 1e2);
const ORANGE: RGBColor = RGBColor(230, 120, 20);
const GREY: RGBColor = RGBColor(110, 110, 110);
const BLUE: RGBColor = RGBColor(31, 100, 180);
const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TTF shipped by the `dejavu` crate; failure would be a build defect.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Draws the experiment's figure for one profile; returns the files written (`<name>.svg`, `<name>.png`).
pub fn draw(
    exp: &Experiment,
    fig: &FigureSpec,
    runs: &[Run],
    records: &BTreeMap<String, RunRecord>,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    register_font();
    let title = format!("{}   [profile: {}]", exp.title, runs.first().map(|r| r.profile.as_str()).unwrap_or(""));
    match fig.kind {
        FigureKind::EigenmodePanels => {
            let data = PanelData::collect(fig, runs, records);
            render(&exp.name, dir, (WIDTH, HEIGHT), &title, &data)
        }
        FigureKind::TrainingCurves => {
            let data = Curves::collect(exp, runs, records);
            let size = (360 * data.cells.len().max(1) as u32 + 80, 760);
            render(&exp.name, dir, size, &title, &data)
        }
    }
}

/// The outcome study's figure, `outcomes.svg` and `.png` in `dir`: every judged run's final readout top-1
/// against the participation ratio of C at its end, one colour per implementation, one marker per cell,
/// the untrained floor as a grey line.
pub fn outcomes(study: &crate::harness::outcomes::Study, title: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    render("outcomes", dir, (1000, 700), title, study)
}

impl Figure for crate::harness::outcomes::Study {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, title: &str) -> DrawResult {
        let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
        root.fill(&WHITE).map_err(e)?;
        let points: Vec<(f64, f64)> =
            self.cells.iter().flat_map(|c| c.seeds.iter().filter_map(|s| Some((s.participation_ratio?, s.readout_top1?)))).collect();
        let xmax = points.iter().map(|p| p.0).fold(2.0, f64::max) * 1.3;
        let ymax = points.iter().map(|p| p.1).fold(self.floor.unwrap_or(0.0), f64::max) + 5.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 18))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d((0.9..xmax).log_scale(), 0.0..ymax)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("participation ratio of C at the end (log scale)")
            .y_desc("final readout top-1 (%)")
            .x_label_formatter(&tick)
            .light_line_style(WHITE)
            .label_style((FONT, 14))
            .draw()
            .map_err(e)?;
        if let Some(f) = self.floor {
            chart
                .draw_series(DashedLineSeries::new(vec![(0.9, f), (xmax, f)], 6, 4, GREY.stroke_width(2)))
                .map_err(e)?
                .label(format!("untrained floor {f:.1} %"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREY.stroke_width(2)));
        }
        let mut cells: Vec<&str> = Vec::new();
        for c in &self.cells {
            if !cells.contains(&c.cell.as_str()) {
                cells.push(&c.cell);
            }
        }
        for c in &self.cells {
            let color = if c.implementation == crate::harness::outcomes::OURS { BLUE } else { ORANGE };
            let pts: Vec<(f64, f64)> = c.seeds.iter().filter_map(|s| Some((s.participation_ratio?, s.readout_top1?))).collect();
            let label = format!("{}, {} ({}/{} learned)", c.cell, c.implementation, c.learned, c.n);
            // The first cell's seeds as rings, the others' as discs.
            let style = if cells.first() == Some(&c.cell.as_str()) { color.stroke_width(2) } else { color.filled() };
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 6, style)))
                .map_err(e)?
                .label(label)
                .legend(move |(x, y)| EmptyElement::at((x + 10, y)) + Circle::new((0, 0), 6, style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
        Ok(())
    }
}

/// A figure's data, drawable on any backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, title: &str) -> DrawResult;
}

impl Figure for PanelData {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, title: &str) -> DrawResult {
        draw_panels(root, title, self)
    }
}

impl Figure for Curves {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, title: &str) -> DrawResult {
        draw_curves(root, title, self)
    }
}

/// Renders `figure` to `<name>.svg` and `<name>.png` in `dir`.
fn render(stem: &str, dir: &Path, size: (u32, u32), title: &str, figure: &impl Figure) -> Result<Vec<PathBuf>> {
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let perr = |path: &Path| {
        let path = path.to_path_buf();
        move |e: String| Error::Plot { path: path.clone(), msg: e }
    };
    // Render into temp names, then rename, so a failed draw never leaves a half-written figure behind.
    // Per process: two sweeps on one folder may both regenerate the figure.
    let pid = std::process::id();
    let (svg_tmp, png_tmp) = (dir.join(format!(".tmp-figure-{pid}.svg")), dir.join(format!(".tmp-figure-{pid}.png")));
    figure.draw(SVGBackend::new(&svg_tmp, size).into_drawing_area(), title).map_err(perr(&svg))?;
    figure.draw(BitMapBackend::new(&png_tmp, size).into_drawing_area(), title).map_err(perr(&png))?;
    std::fs::rename(&svg_tmp, &svg).map_err(|e| Error::io(&svg, e))?;
    std::fs::rename(&png_tmp, &png).map_err(|e| Error::io(&png, e))?;
    Ok(vec![svg, png])
}

/// One figure column: its config and the histories of its seeds (first seed first).
struct Column {
    title: String,
    traj: Vec<(TheoryConfig, TheoryHistory)>,
    spec: Vec<(TheoryConfig, TheoryHistory)>,
}

struct PanelData {
    columns: Vec<Column>,
}

impl PanelData {
    fn collect(fig: &FigureSpec, runs: &[Run], records: &BTreeMap<String, RunRecord>) -> Self {
        let histories = |cell: &str| -> Vec<(TheoryConfig, TheoryHistory)> {
            runs.iter()
                .filter(|r| r.cell == cell)
                .filter_map(|r| {
                    let rec = records.get(&r.file_name()).filter(|rec| rec.spec_hash == r.hash)?;
                    let RunConfig::Theory(cfg) = &rec.config else { return None };
                    let h: TheoryHistory = serde_json::from_value(rec.history.clone()).ok()?;
                    Some((cfg.clone(), h))
                })
                .collect()
        };
        PanelData {
            columns: fig
                .panels
                .iter()
                .map(|p| Column { title: p.title.clone(), traj: histories(&p.trajectories), spec: histories(&p.spectrum) })
                .collect(),
        }
    }
}

/// Tick labels without spurious decimals: 0.01, 1, 100, 2.5, 5e4.
fn tick(v: &f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e4).contains(&a) {
        format!("{v:.0e}")
    } else {
        let r = (v * 1000.0).round() / 1000.0;
        format!("{r}")
    }
}

fn clamp_lambda(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(LAMBDA_RANGE.0, LAMBDA_RANGE.1)
    } else {
        LAMBDA_RANGE.1
    }
}

/// Predicted eigenvalues at the logged steps of `h`, from its first logged spectrum.
fn predicted_at_logged(cfg: &TheoryConfig, h: &TheoryHistory) -> Vec<Vec<f64>> {
    let Some(first) = h.eigenvalues.first() else { return Vec::new() };
    let initial = first.clone();
    let last = h.steps.last().copied().unwrap_or(0);
    let traj = maps::trajectory(cfg.loss, &initial, cfg.alpha, cfg.sigma, cfg.lr, last);
    h.steps.iter().map(|&s| traj[s].clone()).collect()
}

type DrawResult = std::result::Result<(), String>;

fn draw_panels<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, data: &PanelData) -> DrawResult {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let body = root.titled(title, (FONT, 30)).map_err(e)?;
    let ncol = data.columns.len().max(1);
    let areas = body.split_evenly((3, ncol));
    for (c, col) in data.columns.iter().enumerate() {
        draw_trajectories(&areas[c], col).map_err(e)?;
        draw_flow(&areas[ncol + c], col).map_err(e)?;
        draw_spectrum(&areas[2 * ncol + c], col, c == 0).map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

fn no_data<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, what: &str) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    area.draw(&Text::new(format!("no stored runs for {what}"), (20, 40), (FONT, 18).into_font().color(&GREY)))
}

fn draw_trajectories<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    col: &Column,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let Some((_, h)) = col.traj.first() else { return no_data(area, &col.title) };
    let finite = |p: &Vec<f64>| p.len() >= 2 && p[0].is_finite() && p[1].is_finite();
    // The box is set by where the points start (and end, unless they run away): a diverging run's
    // paths are drawn up to where they leave it.
    let extent = |step: Option<&Vec<Vec<f64>>>| {
        step.map(|pts| {
            pts.iter().filter(|p| finite(p)).fold(0.0f64, |m, p| m.max(p[0].abs()).max(p[1].abs()))
        })
        .unwrap_or(0.0)
    };
    let (start, end) = (extent(h.trajectories.first()), extent(h.trajectories.last()));
    let lim = if end <= 3.0 * start { start.max(end) } else { 2.0 * start }.max(1e-3) * 1.1;
    let inside = |p: &(f64, f64)| p.0.abs() <= lim && p.1.abs() <= lim;
    let mut chart = ChartBuilder::on(area)
        .caption(&col.title, (FONT, 26))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(-lim..lim, -lim..lim)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("z₁ = (W x)₁")
        .y_desc("z₂ = (W x)₂")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .draw()?;
    let npoints = h.trajectories.first().map(|s| s.len()).unwrap_or(0);
    for j in 0..npoints {
        let path: Vec<(f64, f64)> = h
            .trajectories
            .iter()
            .map_while(|s| s.get(j).filter(|p| finite(p)).map(|p| (p[0], p[1])).filter(inside))
            .collect();
        chart.draw_series(LineSeries::new(path.iter().cloned(), ShapeStyle::from(&ORANGE).stroke_width(2)))?;
        let left_box = path.len() < h.trajectories.len();
        if let (Some(&end), false) = (path.last(), left_box) {
            chart.draw_series(std::iter::once(Circle::new(end, 4, GREY.filled())))?;
        }
    }
    Ok(())
}

/// Middle row: the theory's per-mode flow of (λ₁, λ₂) as a direction field, with each seed's simulated
/// eigenvalue path (solid) and the path the theory predicts from the same start (dashed).
fn draw_flow<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, col: &Column) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let Some((cfg, _)) = col.traj.first() else { return no_data(area, &col.title) };
    let (lo, hi) = LAMBDA_RANGE;
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((lo..hi).log_scale(), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("λ₁ (larger eigenvalue of W Wᵀ)")
        .y_desc("λ₂ (smaller)")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .draw()?;
    // Direction field: each arrow shows where the theory moves (λ₁, λ₂) over `horizon` steps, drawn at a
    // fixed length in log units; its shade says how fast.
    let horizon = 50;
    let grid = 13;
    let (llo, lhi) = (lo.ln(), hi.ln());
    let arrow_len = (lhi - llo) / grid as f64 * 0.42;
    let advance = |l: f64| (0..horizon).fold(l, |v, _| maps::step(cfg.loss, v, cfg.alpha, cfg.sigma, cfg.lr));
    for i in 0..grid {
        for k in 0..grid {
            let a = llo + (i as f64 + 0.5) / grid as f64 * (lhi - llo);
            let b = llo + (k as f64 + 0.5) / grid as f64 * (lhi - llo);
            let (l1, l2) = (a.exp(), b.exp());
            let (n1, n2) = (advance(l1), advance(l2));
            let (d1, d2) = (n1.ln() - a, n2.ln() - b);
            let speed = (d1 * d1 + d2 * d2).sqrt();
            if !speed.is_finite() || speed < 1e-12 {
                continue;
            }
            let shade = (1.0 - (speed / (lhi - llo)).min(1.0)).powf(3.0);
            let g = (200.0 * shade) as u8;
            let color = RGBColor(g, g, g);
            let (u1, u2) = (d1 / speed * arrow_len, d2 / speed * arrow_len);
            let tip = (a + u1, b + u2);
            let head = |angle: f64| {
                let (c, s) = (angle.cos(), angle.sin());
                let (h1, h2) = (-(u1 * c - u2 * s) * 0.35, -(u1 * s + u2 * c) * 0.35);
                ((tip.0 + h1).exp(), (tip.1 + h2).exp())
            };
            let tip_pt = (tip.0.exp(), tip.1.exp());
            chart.draw_series(std::iter::once(PathElement::new(vec![(l1, l2), tip_pt], color.stroke_width(1))))?;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![head(0.5), tip_pt, head(-0.5)],
                color.stroke_width(1),
            )))?;
        }
    }
    chart.draw_series(std::iter::once(Circle::new((1.0, 1.0), 5, BLUE.filled())))?;
    for (k, (cfg, h)) in col.traj.iter().enumerate() {
        let pts = |rows: &mut dyn Iterator<Item = Vec<f64>>| -> Vec<(f64, f64)> {
            rows.filter(|r| r.len() >= 2)
                .map(|r| (clamp_lambda(r[r.len() - 1]), clamp_lambda(r[r.len() - 2])))
                .collect()
        };
        let sim = pts(&mut h.eigenvalues.iter().cloned());
        let pred = pts(&mut predicted_at_logged(cfg, h).into_iter());
        let color = TAB10[k % TAB10.len()];
        chart.draw_series(LineSeries::new(sim, color.stroke_width(2)))?;
        chart.draw_series(DashedLineSeries::new(pred, 6, 5, BLACK.stroke_width(2)))?;
    }
    Ok(())
}

/// Bottom row: every eigenvalue of W Wᵀ against step (first seed), simulated in colour, the theory's
/// prediction for each mode as a thin black dashed line on top.
fn draw_spectrum<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    col: &Column,
    legend: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let Some((cfg, h)) = col.spec.first() else { return no_data(area, &col.title) };
    let (lo, hi) = LAMBDA_RANGE;
    // A run that diverged or collapsed early is drawn over its own length.
    let xmax = h.steps.last().copied().unwrap_or(cfg.steps).max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..xmax, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_desc("step")
        .y_desc("eigenvalues of W Wᵀ")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_labels(4)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .draw()?;
    let pred = predicted_at_logged(cfg, h);
    let nmodes = h.eigenvalues.first().map(|r| r.len()).unwrap_or(0);
    for m in 0..nmodes {
        let color = TAB10[m % TAB10.len()];
        let sim: Vec<(f64, f64)> = h
            .steps
            .iter()
            .zip(&h.eigenvalues)
            .map(|(&s, r)| (s as f64, clamp_lambda(r[m])))
            .collect();
        // Modes stay sorted under every map (each is monotone for the step sizes used), so the m-th
        // predicted value is the m-th simulated mode's prediction.
        let mut predm: Vec<(f64, f64)> = Vec::new();
        for (&s, r) in h.steps.iter().zip(&pred) {
            let mut sorted = r.clone();
            sorted.sort_by(f64::total_cmp);
            predm.push((s as f64, clamp_lambda(sorted[m])));
        }
        let s1 = chart.draw_series(LineSeries::new(sim, color.stroke_width(2)))?;
        if legend && m == 0 {
            s1.label("simulated").legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLACK.stroke_width(2)));
        }
        let s2 = chart.draw_series(DashedLineSeries::new(predm, 4, 4, BLACK.stroke_width(1)))?;
        if legend && m == 0 {
            s2.label("theory (per-mode map)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], BLACK.stroke_width(2)));
        }
    }
    chart.draw_series(std::iter::once(PathElement::new(vec![(0.0, 1.0), (xmax, 1.0)], GREY.mix(0.6))))?;
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .draw()?;
    }
    Ok(())
}

/// One trained cell of a training-curve figure: per seed, its history and whether it collapsed
/// (completely or dimensionally: below the untrained floor).
struct CurveCell {
    title: String,
    seeds: Vec<(u64, SslHistory, bool)>,
}

struct Curves {
    cells: Vec<CurveCell>,
    /// Mean final readout of the untrained-backbone cells (the floor SSL must beat).
    floor: Option<f64>,
}

impl Curves {
    fn collect(exp: &Experiment, runs: &[Run], records: &BTreeMap<String, RunRecord>) -> Self {
        let floors = crate::harness::aggregate::untrained_floors(runs, records);
        // One line per figure: drawn where every trained cell is judged against the same floor.
        let floor = (floors.len() == 1).then(|| floors.values().copied().next()).flatten();
        let mut cells: Vec<CurveCell> = Vec::new();
        for run in runs {
            let Some(rec) = records.get(&run.file_name()).filter(|rec| rec.spec_hash == run.hash) else { continue };
            let Some(crate::engine::FloorRole::Judged(dataset)) = run.config.floor_role() else { continue };
            let Ok(h) = serde_json::from_value::<SslHistory>(rec.history.clone()) else { continue };
            let outcome = crate::engine::deep_outcome(rec.status, &rec.metrics, &rec.history, floors.get(&dataset).copied());
            let failed = outcome.is_some_and(|(o, _)| o != crate::engine::DeepOutcome::Learned);
            match cells.iter_mut().find(|c| c.title.starts_with(&run.cell)) {
                Some(c) => c.seeds.push((run.seed, h, failed)),
                None => {
                    let label = exp.cell(&run.cell).map(|c| format!("{}: {}", c.row, c.column_for(&run.config))).unwrap_or_default();
                    cells.push(CurveCell { title: format!("{}\n{label}", run.cell), seeds: vec![(run.seed, h, failed)] });
                }
            }
        }
        Curves { cells, floor }
    }
}

fn draw_curves<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, data: &Curves) -> DrawResult {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let body = root.titled(title, (FONT, 20)).map_err(e)?;
    if data.cells.is_empty() {
        no_data(&body, "any trained cell").map_err(e)?;
        return root.present().map_err(e);
    }
    let n = data.cells.len();
    let areas = body.split_evenly((2, n));
    for (c, cell) in data.cells.iter().enumerate() {
        draw_curve(&areas[c], cell, true, data.floor, c == 0).map_err(e)?;
        draw_curve(&areas[n + c], cell, false, None, c == 0).map_err(e)?;
    }
    root.present().map_err(e)
}

/// Readout top-1 (`readout`) or the participation ratio of C against epoch, one line per seed
/// (collapsed seeds dashed), with the floor line where given.
fn draw_curve<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    cell: &CurveCell,
    readout: bool,
    floor: Option<f64>,
    legend: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let series: Vec<(u64, bool, Vec<(f64, f64)>)> = cell
        .seeds
        .iter()
        .map(|(seed, h, collapsed)| {
            let ys: Vec<Option<f64>> = if readout { h.readout_top1.iter().map(|&v| Some(v)).collect() } else { h.participation_ratio.clone() };
            let pts = h.epoch.iter().zip(ys).filter_map(|(&e, y)| y.filter(|v| v.is_finite()).map(|y| (e as f64, y))).collect();
            (*seed, *collapsed, pts)
        })
        .collect();
    let xmax = series.iter().flat_map(|s| s.2.iter().map(|p| p.0)).fold(1.0, f64::max);
    let top = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(floor.unwrap_or(0.0), f64::max);
    let ymax = if readout { (top * 1.2).clamp(10.0, 100.0) } else { top.max(2.0) * 1.1 };
    let (head, tail) = cell.title.split_once('\n').unwrap_or((&cell.title, ""));
    let caption = if readout { format!("{head}\n{tail}") } else { String::new() };
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption(caption.lines().last().unwrap_or(""), (FONT, 14))
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.5..xmax + 0.5, 0.0..ymax)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_desc("epoch")
        .y_desc(if readout { "readout top-1 (%)" } else { "participation ratio of C" })
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .x_labels(6)
        .draw()?;
    if let Some(f) = floor {
        let s = chart.draw_series(DashedLineSeries::new(vec![(0.5, f), (xmax + 0.5, f)], 5, 4, GREY.stroke_width(2)))?;
        if legend {
            s.label("untrained backbone").legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREY.stroke_width(2)));
        }
    }
    for (seed, collapsed, pts) in series {
        let color = TAB10[seed as usize % TAB10.len()];
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        let s = if collapsed {
            chart.draw_series(DashedLineSeries::new(pts, 3, 3, color.stroke_width(2)))?
        } else {
            chart.draw_series(LineSeries::new(pts, color.stroke_width(2)))?
        };
        if legend {
            let label = if collapsed { format!("seed {seed} (collapsed)") } else { format!("seed {seed}") };
            s.label(label).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
    }
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .draw()?;
    }
    Ok(())
}

/// A line chart of one metric across commits (x: commits in order, oldest first; one line per cell), as
/// SVG, for the report site.
pub fn metric_history_svg(path: &Path, title: &str, commits: &[String], series: &[(String, Vec<Option<f64>>)]) -> Result<()> {
    register_font();
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    draw_history(&root, title, commits, series).map_err(|e| Error::Plot { path: path.to_path_buf(), msg: e.to_string() })
}

fn draw_history<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    commits: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let values: Vec<f64> = series.iter().flat_map(|(_, v)| v.iter().flatten().copied()).filter(|v| v.is_finite()).collect();
    let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.1).max(1e-6 * hi.abs().max(1.0));
    root.fill(&WHITE)?;
    let n = commits.len().max(2);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.2f64..(n - 1) as f64 + 0.2, (lo - pad)..(hi + pad))?;
    let label = |x: &f64| commits.get(x.round() as usize).filter(|_| (x - x.round()).abs() < 1e-9).map(|c| c.chars().take(7).collect()).unwrap_or_default();
    chart
        .configure_mesh()
        .x_labels(n.min(12))
        .x_label_formatter(&label)
        .x_desc("commit that changed the results (oldest first)")
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()?;
    for (i, (name, ys)) in series.iter().enumerate() {
        let color = TAB10[i % TAB10.len()];
        let pts: Vec<(f64, f64)> = ys.iter().enumerate().filter_map(|(x, y)| y.filter(|v| v.is_finite()).map(|y| (x as f64, y))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).label_font((FONT, 12)).draw()?;
    root.present()?;
    Ok(())
}
