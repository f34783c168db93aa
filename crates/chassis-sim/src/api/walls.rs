//! Video walls, their windows and scenes, and what each output port shows.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{json, Value};

use super::check_name;
use crate::auth::{Auth, Mutation};
use crate::body::{parse_id, JsonBody};
use crate::cascade::Effect;
use crate::chassis::{Chassis, Reply};
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::model::*;

/// A wall with its screens, row by row.
pub fn wall_view(db: &Db, w: &Wall) -> Value {
    let mut screens: Vec<&Screen> = db.all::<Screen>().filter(|s| s.wall_id == w.id).collect();
    screens.sort_by_key(|s| (s.row, s.col));
    json!({
        "id": w.id, "name": w.name, "rows": w.rows, "cols": w.cols,
        "screen_width": w.screen_width, "screen_height": w.screen_height,
        "screens": screens.iter().map(|s| json!({"id": s.id, "row": s.row, "col": s.col, "output": s.output})).collect::<Vec<_>>(),
    })
}

fn windows_of(db: &Db, wall: u64) -> Vec<Window> {
    let mut v: Vec<Window> = db.all::<Window>().filter(|w| w.wall_id == wall).cloned().collect();
    v.sort_by_key(|w| (w.z, w.id));
    v
}

pub fn scene_view(db: &Db, s: &Scene) -> Value {
    let items: Vec<&SceneItem> = db.all::<SceneItem>().filter(|i| i.scene_id == s.id).collect();
    json!({"id": s.id, "wall_id": s.wall_id, "name": s.name, "items": items})
}

pub async fn list(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    Reply::ok(c.read(|db| db.all::<Wall>().map(|w| wall_view(db, w)).collect()))
}

pub async fn one(State(c): State<Arc<Chassis>>, _a: Auth, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    c.read(|db| db.get::<Wall>(id).map(|w| wall_view(db, w))).map(Reply::ok).ok_or(ApiError::not_found("wall", id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWall {
    name: String,
    rows: u32,
    cols: u32,
    outputs: Vec<u32>,
    screen_width: Option<u32>,
    screen_height: Option<u32>,
}

pub async fn create(State(c): State<Arc<Chassis>>, m: Mutation, JsonBody(req): JsonBody<NewWall>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure walls")?;
    let name = check_name(&req.name, "a wall name")?;
    if !(1..=8).contains(&req.rows) || !(1..=8).contains(&req.cols) {
        return Err(ApiError::invalid("invalid_geometry", "rows and cols must each be between 1 and 8"));
    }
    let (sw, sh) = (req.screen_width.unwrap_or(1920), req.screen_height.unwrap_or(1080));
    if !(1..=7680).contains(&sw) || !(1..=4320).contains(&sh) {
        return Err(ApiError::invalid("invalid_geometry", "screen_width must be 1..7680 and screen_height 1..4320"));
    }
    let screens = (req.rows * req.cols) as usize;
    if req.outputs.len() != screens {
        return Err(ApiError::invalid(
            "invalid_geometry",
            format!("a {}x{} wall needs {screens} outputs, {} given", req.rows, req.cols, req.outputs.len()),
        ));
    }
    let max = c.cfg.outputs;
    if let Some(bad) = req.outputs.iter().find(|o| !(1..=max).contains(*o)) {
        return Err(ApiError::invalid("no_such_output", format!("output {bad} does not exist (outputs are 1..{max})")));
    }
    if req.outputs.iter().collect::<BTreeSet<_>>().len() != screens {
        return Err(ApiError::invalid("duplicate_output", "each output may drive only one screen"));
    }
    c.mutate(&m.0, |tx| {
        let used = tx.all::<Screen>().find(|s| req.outputs.contains(&s.output)).map(|s| (s.output, s.wall_id));
        if let Some((output, wall)) = used {
            let taken = ApiError::conflict("output_in_use", format!("output {output} already drives a screen of wall {wall}"));
            // Row by row, the wall and its screens up to the first one
            // whose output is taken had been inserted.
            let screens = req.outputs.iter().position(|o| tx.all::<Screen>().any(|s| s.output == *o)).unwrap_or(0) as u64 + 1;
            let taken = tx.refused_insert::<Wall>(1, taken);
            return Err(tx.refused_insert::<Screen>(screens, taken));
        }
        let wall = tx.create(|id| Wall { id, name, rows: req.rows, cols: req.cols, screen_width: sw, screen_height: sh })?;
        for row in 0..req.rows {
            for col in 0..req.cols {
                let output = req.outputs[(row * req.cols + col) as usize];
                tx.create(|id| Screen { id, wall_id: wall.id, row, col, output })?;
                // The wall takes the output over from the matrix.
                tx.delete::<Route>(u64::from(output));
            }
        }
        let view = wall_view(tx.db, &wall);
        tx.emit("wall.created", view.clone());
        Ok(Reply::created(view))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WallUpdate {
    name: String,
}

pub async fn update(
    State(c): State<Arc<Chassis>>,
    m: Mutation,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<WallUpdate>,
) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure walls")?;
    let id = parse_id(&id)?;
    let name = check_name(&req.name, "a wall name")?;
    c.mutate(&m.0, |tx| {
        let mut wall = tx.must::<Wall>("wall", id)?;
        wall.name = name;
        tx.put(wall.clone());
        let view = wall_view(tx.db, &wall);
        tx.emit("wall.updated", view.clone());
        Ok(Reply::ok(view))
    })
}

pub async fn remove(State(c): State<Arc<Chassis>>, m: Mutation, Path(id): Path<String>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure walls")?;
    let id = parse_id(&id)?;
    c.mutate(&m.0, |tx| {
        tx.must::<Wall>("wall", id)?;
        let screens: Vec<u64> = tx.all::<Screen>().filter(|s| s.wall_id == id).map(|s| s.id).collect();
        let windows: Vec<u64> = tx.all::<Window>().filter(|w| w.wall_id == id).map(|w| w.id).collect();
        let scenes: Vec<u64> = tx.all::<Scene>().filter(|s| s.wall_id == id).map(|s| s.id).collect();
        let items: Vec<u64> = tx.all::<SceneItem>().filter(|i| scenes.contains(&i.scene_id)).map(|i| i.id).collect();
        for s in screens {
            tx.delete::<Screen>(s);
        }
        for w in windows {
            tx.delete::<Window>(w);
        }
        for i in items {
            tx.delete::<SceneItem>(i);
        }
        for s in scenes {
            tx.delete::<Scene>(s);
        }
        tx.delete::<Wall>(id);
        tx.emit("wall.deleted", json!({"id": id}));
        Ok(Reply::no_content())
    })
}

// ---- windows ----

pub async fn windows(State(c): State<Arc<Chassis>>, _a: Auth, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    c.read(|db| db.get::<Wall>(id).map(|_| json!(windows_of(db, id)))).map(Reply::ok).ok_or(ApiError::not_found("wall", id))
}

pub async fn window(State(c): State<Arc<Chassis>>, _a: Auth, Path((id, wid)): Path<(String, String)>) -> ApiResult<Reply> {
    let (id, wid) = (parse_id(&id)?, parse_id(&wid)?);
    c.read(|db| db.get::<Window>(wid).filter(|w| w.wall_id == id).map(|w| json!(w)))
        .map(Reply::ok)
        .ok_or(ApiError::not_found("window", wid))
}

/// A window must lie inside its wall and be at least 1×1.
fn check_rect(wall: &Wall, x: u32, y: u32, w: u32, h: u32) -> ApiResult<()> {
    let inside = w >= 1 && h >= 1 && u64::from(x) + u64::from(w) <= wall.width() && u64::from(y) + u64::from(h) <= wall.height();
    if inside {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "window_out_of_bounds",
            format!("window {w}x{h} at ({x},{y}) does not fit inside wall {} ({}x{} pixels)", wall.id, wall.width(), wall.height()),
        ))
    }
}

fn check_source(tx: &Tx, source_id: u64) -> ApiResult<Source> {
    tx.get::<Source>(source_id).cloned().ok_or_else(|| ApiError::invalid("unknown_source", format!("source {source_id} does not exist")))
}

fn top_z(tx: &Tx, wall: u64) -> u64 {
    tx.all::<Window>().filter(|w| w.wall_id == wall).map(|w| w.z).max().unwrap_or(0)
}

/// A window showing a cascade source makes the superior route the
/// subordinate's cascade link to it.
fn route_cascade(tx: &mut Tx, window: &Window, source: &Source) {
    if let (SourceKind::Cascade, Some(sub), Some(remote)) = (source.kind, source.subordinate_id, source.remote_source_id) {
        let link = (window.id - 1) % CASCADE_LINKS + 1;
        tx.effects.push(Effect::RouteLink { subordinate_id: sub, link, remote_source_id: remote });
    }
}

/// Open one window on top of the wall (shared by open and recall).
fn open_in(tx: &mut Tx, wall: &Wall, source_id: u64, x: u32, y: u32, w: u32, h: u32) -> ApiResult<Window> {
    let source = check_source(tx, source_id)?;
    check_rect(wall, x, y, w, h)?;
    if tx.all::<Window>().filter(|win| win.wall_id == wall.id).count() >= MAX_WINDOWS_PER_WALL {
        return Err(ApiError::invalid("too_many_windows", format!("wall {} already holds {MAX_WINDOWS_PER_WALL} windows", wall.id)));
    }
    let z = top_z(tx, wall.id) + 1;
    let win = tx.create(|id| Window { id, wall_id: wall.id, source_id, x, y, w, h, z })?;
    route_cascade(tx, &win, &source);
    tx.emit("window.created", json!(win));
    Ok(win)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWindow {
    source_id: u64,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

pub async fn open_window(
    State(c): State<Arc<Chassis>>,
    m: Mutation,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<NewWindow>,
) -> ApiResult<Reply> {
    m.require(Role::Operator, "open windows")?;
    let id = parse_id(&id)?;
    c.mutate(&m.0, |tx| {
        let wall = tx.must::<Wall>("wall", id)?;
        let win = open_in(tx, &wall, req.source_id, req.x, req.y, req.w, req.h)?;
        Ok(Reply::created(json!(win)))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowUpdate {
    source_id: Option<u64>,
    x: Option<u32>,
    y: Option<u32>,
    w: Option<u32>,
    h: Option<u32>,
}

fn must_window(tx: &Tx, wall: u64, wid: u64) -> ApiResult<(Wall, Window)> {
    let wall = tx.must::<Wall>("wall", wall)?;
    let win = tx.get::<Window>(wid).filter(|w| w.wall_id == wall.id).cloned().ok_or(ApiError::not_found("window", wid))?;
    Ok((wall, win))
}

pub async fn update_window(
    State(c): State<Arc<Chassis>>,
    m: Mutation,
    Path((id, wid)): Path<(String, String)>,
    JsonBody(req): JsonBody<WindowUpdate>,
) -> ApiResult<Reply> {
    m.require(Role::Operator, "move windows")?;
    let (id, wid) = (parse_id(&id)?, parse_id(&wid)?);
    c.mutate(&m.0, |tx| {
        let (wall, mut win) = must_window(tx, id, wid)?;
        win.x = req.x.unwrap_or(win.x);
        win.y = req.y.unwrap_or(win.y);
        win.w = req.w.unwrap_or(win.w);
        win.h = req.h.unwrap_or(win.h);
        check_rect(&wall, win.x, win.y, win.w, win.h)?;
        if let Some(s) = req.source_id {
            let source = check_source(tx, s)?;
            if s != win.source_id {
                win.source_id = s;
                route_cascade(tx, &win, &source);
            }
        }
        tx.put(win.clone());
        tx.emit("window.updated", json!(win));
        Ok(Reply::ok(json!(win)))
    })
}

pub async fn raise(State(c): State<Arc<Chassis>>, m: Mutation, Path((id, wid)): Path<(String, String)>) -> ApiResult<Reply> {
    m.require(Role::Operator, "raise windows")?;
    let (id, wid) = (parse_id(&id)?, parse_id(&wid)?);
    c.mutate(&m.0, |tx| {
        let (_, mut win) = must_window(tx, id, wid)?;
        let others_top = tx.all::<Window>().filter(|w| w.wall_id == id && w.id != wid).map(|w| w.z).max().unwrap_or(0);
        if win.z <= others_top {
            win.z = others_top + 1;
            tx.put(win.clone());
        }
        tx.emit("window.raised", json!(win));
        Ok(Reply::ok(json!(win)))
    })
}

pub async fn close_window(State(c): State<Arc<Chassis>>, m: Mutation, Path((id, wid)): Path<(String, String)>) -> ApiResult<Reply> {
    m.require(Role::Operator, "close windows")?;
    let (id, wid) = (parse_id(&id)?, parse_id(&wid)?);
    c.mutate(&m.0, |tx| {
        must_window(tx, id, wid)?;
        tx.delete::<Window>(wid);
        tx.emit("window.deleted", json!({"id": wid, "wall_id": id}));
        Ok(Reply::no_content())
    })
}

fn clear_wall(tx: &mut Tx, wall: u64) {
    let ids: Vec<u64> = tx.all::<Window>().filter(|w| w.wall_id == wall).map(|w| w.id).collect();
    for w in ids {
        tx.delete::<Window>(w);
    }
    tx.emit("windows.cleared", json!({"wall_id": wall}));
}

pub async fn clear(State(c): State<Arc<Chassis>>, m: Mutation, Path(id): Path<String>) -> ApiResult<Reply> {
    m.require(Role::Operator, "clear walls")?;
    let id = parse_id(&id)?;
    c.mutate(&m.0, |tx| {
        tx.must::<Wall>("wall", id)?;
        clear_wall(tx, id);
        Ok(Reply::no_content())
    })
}

// ---- scenes ----

pub async fn scenes(State(c): State<Arc<Chassis>>, _a: Auth, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    c.read(|db| db.get::<Wall>(id).map(|_| db.all::<Scene>().filter(|s| s.wall_id == id).map(|s| scene_view(db, s)).collect::<Vec<_>>()))
        .map(|v| Reply::ok(json!(v)))
        .ok_or(ApiError::not_found("wall", id))
}

pub async fn scene(State(c): State<Arc<Chassis>>, _a: Auth, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    c.read(|db| db.get::<Scene>(id).map(|s| scene_view(db, s))).map(Reply::ok).ok_or(ApiError::not_found("scene", id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewScene {
    name: String,
}

pub async fn save_scene(
    State(c): State<Arc<Chassis>>,
    m: Mutation,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<NewScene>,
) -> ApiResult<Reply> {
    m.require(Role::Admin, "save scenes")?;
    let id = parse_id(&id)?;
    let name = check_name(&req.name, "a scene name")?;
    c.mutate(&m.0, |tx| {
        tx.must::<Wall>("wall", id)?;
        let scene = tx.create(|sid| Scene { id: sid, wall_id: id, name })?;
        // One item per window, lowest z first: the contract's creation order.
        for w in windows_of(tx.db, id) {
            tx.create(|iid| SceneItem { id: iid, scene_id: scene.id, source_id: w.source_id, x: w.x, y: w.y, w: w.w, h: w.h, z: w.z })?;
        }
        let view = scene_view(tx.db, &scene);
        tx.emit("scene.created", view.clone());
        Ok(Reply::created(view))
    })
}

pub async fn delete_scene(State(c): State<Arc<Chassis>>, m: Mutation, Path(id): Path<String>) -> ApiResult<Reply> {
    m.require(Role::Admin, "delete scenes")?;
    let id = parse_id(&id)?;
    c.mutate(&m.0, |tx| {
        tx.must::<Scene>("scene", id)?;
        let items: Vec<u64> = tx.all::<SceneItem>().filter(|i| i.scene_id == id).map(|i| i.id).collect();
        for i in items {
            tx.delete::<SceneItem>(i);
        }
        tx.delete::<Scene>(id);
        tx.emit("scene.deleted", json!({"id": id}));
        Ok(Reply::no_content())
    })
}

pub async fn recall(State(c): State<Arc<Chassis>>, m: Mutation, Path(id): Path<String>) -> ApiResult<Reply> {
    m.require(Role::Operator, "recall scenes")?;
    let id = parse_id(&id)?;
    c.mutate(&m.0, |tx| {
        let scene = tx.must::<Scene>("scene", id)?;
        let wall = tx.must::<Wall>("wall", scene.wall_id)?;
        let items: Vec<SceneItem> = tx.all::<SceneItem>().filter(|i| i.scene_id == id).cloned().collect();
        clear_wall(tx, wall.id);
        let mut opened = Vec::with_capacity(items.len());
        for i in items {
            opened.push(open_in(tx, &wall, i.source_id, i.x, i.y, i.w, i.h)?);
        }
        tx.emit("scene.recalled", json!({"id": id, "wall_id": wall.id}));
        Ok(Reply::ok(json!({"windows": opened})))
    })
}

// ---- what the outputs show ----

/// `[{output, input or null, window_ids}]` for every output port: a wall's
/// output shows the windows overlapping its screen (bottom to top) and the
/// input port of the topmost one; any other output shows its matrix route.
pub fn outputs_view(db: &Db, outputs: u32) -> Value {
    let mut list = Vec::with_capacity(outputs as usize);
    for out in 1..=outputs {
        let entry = match db.all::<Screen>().find(|s| s.output == out) {
            Some(screen) => {
                let wall = db.get::<Wall>(screen.wall_id);
                let (sx, sy, sw, sh) = wall.map_or((0, 0, 0, 0), |w| {
                    let (sw, sh) = (u64::from(w.screen_width), u64::from(w.screen_height));
                    (u64::from(screen.col) * sw, u64::from(screen.row) * sh, sw, sh)
                });
                let shown: Vec<Window> = windows_of(db, screen.wall_id)
                    .into_iter()
                    .filter(|w| {
                        let (x, y, ww, hh) = (u64::from(w.x), u64::from(w.y), u64::from(w.w), u64::from(w.h));
                        x < sx + sw && x + ww > sx && y < sy + sh && y + hh > sy
                    })
                    .collect();
                let input = shown.last().and_then(|w| db.get::<Source>(w.source_id)).and_then(|s| s.port);
                json!({"output": out, "input": input, "window_ids": shown.iter().map(|w| w.id).collect::<Vec<_>>()})
            }
            None => json!({"output": out, "input": db.get::<Route>(u64::from(out)).map(|r| r.input), "window_ids": []}),
        };
        list.push(entry);
    }
    Value::Array(list)
}

pub async fn hardware_outputs(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    Reply::ok(c.read(|db| outputs_view(db, c.cfg.outputs)))
}
