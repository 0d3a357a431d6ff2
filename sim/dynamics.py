"""Batched 6-DOF quadrotor dynamics, compiled with numba.

State per environment (see ``sim.layout``): position and velocity in the world frame
(z up), a unit quaternion from body to world, body rates, and the four actual rotor
speeds. Each rotor follows its command through a first-order lag. Forces and moments:

* thrust k_f w^2 along body z per rotor, scaled by the Brandt-Selig fit
  C_T(J) / C_T(0) with advance ratio J = V / (n D) when the airframe has an inflow
  model (V is the air speed through the rotor along body z, n the speed in rev/s);
* yaw reaction k_m * thrust per rotor, sign by spin direction;
* roll and pitch moments r_i x thrust_i from the hub positions;
* quadratic drag on translation (body axes) and rotation;
* Euler's equations with the gyroscopic term, J dw/dt = tau - w x (J w);
* quaternion kinematics dq/dt = q (x) (0, w) / 2, renormalised after each step;
* the world around the vehicle: a disturbance force (world frame: the episode's constant
  part plus a gust) and a constant disturbance torque (body frame).

Each motor follows its command with one time constant while speeding up and another
while slowing down; each rotor's thrust coefficient carries its own factor, and the
hubs' horizontal offsets a common arm factor (all per environment, ``sim.layout``).
Integration is classic RK4 with a rotor command held over each physics step of ``dt``.
``floor_z`` (``-inf`` for none) is a perfectly inelastic, high-friction ground: on
contact the vehicle stops.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from sim import layout as L

# Environments handled by one parallel work item; scratch arrays are allocated per chunk.
CHUNK = 64


@njit(cache=True, inline="always")
def _deriv(s, cmd, p, fr, gust, out):
    """Time derivative of one state row ``s`` into ``out`` (both length N_STATE);
    ``gust`` is the time-varying part of the disturbance force (world frame, N)."""
    qw, qx, qy, qz = s[6], s[7], s[8], s[9]
    wx, wy, wz = s[10], s[11], s[12]
    # Body-to-world rotation matrix from the quaternion.
    r00 = 1.0 - 2.0 * (qy * qy + qz * qz)
    r01 = 2.0 * (qx * qy - qw * qz)
    r02 = 2.0 * (qx * qz + qw * qy)
    r10 = 2.0 * (qx * qy + qw * qz)
    r11 = 1.0 - 2.0 * (qx * qx + qz * qz)
    r12 = 2.0 * (qy * qz - qw * qx)
    r20 = 2.0 * (qx * qz - qw * qy)
    r21 = 2.0 * (qy * qz + qw * qx)
    r22 = 1.0 - 2.0 * (qx * qx + qy * qy)
    vx, vy, vz = s[3], s[4], s[5]
    # Velocity in the body frame (R^T v).
    bx = r00 * vx + r10 * vy + r20 * vz
    by = r01 * vx + r11 * vy + r21 * vz
    bz = r02 * vx + r12 * vy + r22 * vz

    kf = p[L.P_KF]
    km = p[L.P_KM]
    diameter = fr[L.F_D]
    thrust = 0.0
    tx = 0.0
    ty = 0.0
    tz = 0.0
    arm = p[L.P_ARM]
    for i in range(4):
        w = s[13 + i]
        if w < 0.0:
            w = 0.0
        t = kf * p[L.P_MOTOR + i] * w * w
        hx = arm * fr[L.F_RPOS + 3 * i]
        hy = arm * fr[L.F_RPOS + 3 * i + 1]
        if diameter > 0.0:
            # Inflow through the rotor disc: body z velocity plus (w x r)_z at the hub.
            inflow = bz + wx * hy - wy * hx
            n = w * fr[L.F_REV]
            c0 = fr[L.F_CT]
            if inflow > 0.0:
                if n > 1e-9:
                    j = inflow / (n * diameter)
                    ct = c0 - fr[L.F_CT + 1] * j - fr[L.F_CT + 2] * j * j
                    t *= (ct if ct > 0.0 else 0.0) / c0
                else:
                    t = 0.0
        thrust += t
        # r x (0, 0, t): the hub's z offset adds no moment for a force along body z.
        tx += hy * t
        ty -= hx * t
        tz += fr[L.F_RYAW + i] * km * t

    # Linear drag in body axes, then to world.
    dx = -fr[L.F_DRAG_LIN] * bx * abs(bx)
    dy = -fr[L.F_DRAG_LIN + 1] * by * abs(by)
    dz = -fr[L.F_DRAG_LIN + 2] * bz * abs(bz) + thrust
    inv_m = 1.0 / p[L.P_MASS]
    out[0] = vx
    out[1] = vy
    out[2] = vz
    fx = p[L.P_FORCE] + gust[0]
    fy = p[L.P_FORCE + 1] + gust[1]
    fz = p[L.P_FORCE + 2] + gust[2]
    out[3] = (r00 * dx + r01 * dy + r02 * dz + fx) * inv_m
    out[4] = (r10 * dx + r11 * dy + r12 * dz + fy) * inv_m
    out[5] = (r20 * dx + r21 * dy + r22 * dz + fz) * inv_m - fr[L.F_G]

    # Quaternion kinematics: q_dot = 0.5 * q (x) (0, w).
    out[6] = 0.5 * (-qx * wx - qy * wy - qz * wz)
    out[7] = 0.5 * (qw * wx + qy * wz - qz * wy)
    out[8] = 0.5 * (qw * wy - qx * wz + qz * wx)
    out[9] = 0.5 * (qw * wz + qx * wy - qy * wx)

    # Euler's equations with the gyroscopic term w x (J w).
    ixx = p[L.P_IXX]
    iyy = p[L.P_IYY]
    izz = p[L.P_IZZ]
    tx += p[L.P_TORQUE] - fr[L.F_DRAG_ROT] * wx * abs(wx)
    ty += p[L.P_TORQUE + 1] - fr[L.F_DRAG_ROT + 1] * wy * abs(wy)
    tz += p[L.P_TORQUE + 2] - fr[L.F_DRAG_ROT + 2] * wz * abs(wz)
    out[10] = (tx - (wy * izz * wz - wz * iyy * wy)) / ixx
    out[11] = (ty - (wz * ixx * wx - wx * izz * wz)) / iyy
    out[12] = (tz - (wx * iyy * wy - wy * ixx * wx)) / izz

    for i in range(4):
        d = cmd[i] - s[13 + i]
        out[13 + i] = d / (p[L.P_TAU_UP] if d > 0.0 else p[L.P_TAU_DOWN])


@njit(cache=True, inline="always")
def rk4_step(s, cmd, p, fr, gust, dt, floor_z, work):
    """Advance one state row in place by one RK4 step of ``dt``; ``work`` is (5, N_STATE)
    scratch."""
    k1, k2, k3, k4, tmp = work[0], work[1], work[2], work[3], work[4]
    h2 = 0.5 * dt
    _deriv(s, cmd, p, fr, gust, k1)
    for j in range(L.N_STATE):
        tmp[j] = s[j] + h2 * k1[j]
    _deriv(tmp, cmd, p, fr, gust, k2)
    for j in range(L.N_STATE):
        tmp[j] = s[j] + h2 * k2[j]
    _deriv(tmp, cmd, p, fr, gust, k3)
    for j in range(L.N_STATE):
        tmp[j] = s[j] + dt * k3[j]
    _deriv(tmp, cmd, p, fr, gust, k4)
    h6 = dt / 6.0
    for j in range(L.N_STATE):
        s[j] += h6 * (k1[j] + 2.0 * (k2[j] + k3[j]) + k4[j])
    norm = math.sqrt(s[6] * s[6] + s[7] * s[7] + s[8] * s[8] + s[9] * s[9])
    if norm > 1e-150:
        for j in range(6, 10):
            s[j] /= norm
    else:  # a vehicle spun up without bound (e.g. held after a crash): keep it finite
        s[6], s[7], s[8], s[9] = 1.0, 0.0, 0.0, 0.0
    if s[2] < floor_z:
        s[2] = floor_z
        for j in range(3, 6):
            s[j] = 0.0
        for j in range(10, 13):
            s[j] = 0.0


@njit(cache=True, inline="always")
def _step_range(state, cmd, params, frame, dt, n_sub, floor_z, start, stop):
    work = np.empty((5, L.N_STATE))
    calm = np.zeros(3)
    for e in range(start, stop):
        for _ in range(n_sub):
            rk4_step(state[e], cmd[e], params[e], frame, calm, dt, floor_z, work)


@njit(cache=True, parallel=True)
def step(state, cmd, params, frame, dt, n_sub, floor_z):
    """Advance every environment's state in place, in parallel chunks.

    state (N, N_STATE) float64; cmd (N, 4) commanded rotor speeds; params (N, N_PARAMS);
    frame (N_FRAME,); dt the physics step; n_sub physics steps per call.
    """
    n = state.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        _step_range(
            state, cmd, params, frame, dt, n_sub, floor_z, c * CHUNK, min(n, (c + 1) * CHUNK)
        )


# A separate serial entry point (not njit(step.py_func): numba's cache would key both
# builds alike and hand the serial one to the parallel caller).
@njit(cache=True)
def step_serial(state, cmd, params, frame, dt, n_sub, floor_z):
    """``step`` without threads: cheaper per call for a handful of environments."""
    _step_range(state, cmd, params, frame, dt, n_sub, floor_z, 0, state.shape[0])


@njit(cache=True)
def derivative(state, cmd, params, frame):
    """d(state)/dt for every environment, for tests and analysis (not the hot path)."""
    out = np.empty_like(state)
    calm = np.zeros(3)
    for e in range(state.shape[0]):
        _deriv(state[e], cmd[e], params[e], frame, calm, out[e])
    return out


@njit(cache=True, inline="always")
def quat_to_matrix(q, out):
    """Row-major body-to-world rotation matrix of a unit quaternion (w, x, y, z)."""
    qw, qx, qy, qz = q[0], q[1], q[2], q[3]
    out[0] = 1.0 - 2.0 * (qy * qy + qz * qz)
    out[1] = 2.0 * (qx * qy - qw * qz)
    out[2] = 2.0 * (qx * qz + qw * qy)
    out[3] = 2.0 * (qx * qy + qw * qz)
    out[4] = 1.0 - 2.0 * (qx * qx + qz * qz)
    out[5] = 2.0 * (qy * qz - qw * qx)
    out[6] = 2.0 * (qx * qz - qw * qy)
    out[7] = 2.0 * (qy * qz + qw * qx)
    out[8] = 1.0 - 2.0 * (qx * qx + qy * qy)


def rotation_matrices(quats: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices of (N, 4) unit quaternions (numpy, for tests/plots)."""
    w, x, y, z = quats[:, 0], quats[:, 1], quats[:, 2], quats[:, 3]
    return np.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    ).reshape(-1, 3, 3)
