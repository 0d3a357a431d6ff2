"""Airframe presets: the physical constants of a quadrotor, checked on construction.

Two presets ship:

* ``crazyflie`` (default): Crazyflie 2.x figures used by several public simulators
  (mass 0.027 kg, rotor offset 0.028 m per axis in an X layout, thrust coefficient
  3.16e-10 N/RPM^2, torque-to-thrust ratio 0.005964 m, inertia diag(3.85e-6, 3.85e-6,
  5.97e-6) kg m^2, motor time constant 0.15 s as in Eschmann et al. 2023, "Learning to
  Fly in Seconds"), with the rotor speed capped where a motor gives the thrust the
  vehicle's firmware allows (0.12 N; thrust-to-weight 1.81 at 27 g).
* ``udacity``: the airframe of the Udacity RL-Quadcopter-2 project's ``physics_sim.py``
  (0.958 kg, 0.4 m arm in a + layout, 0.1 m propellers, Brandt-Selig thrust
  coefficient with inflow, quadratic body drag, rotor speeds 0..900 rev/s) on correct
  rigid-body kinematics. See docs/sim.md for what differs from upstream and why.

Rotor speeds are kept in the airframe's own unit (RPM for crazyflie, rev/s for udacity);
``rev_per_unit`` converts them to rev/s where the inflow model needs it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from sim import layout as L


@dataclass(frozen=True)
class Airframe:
    """Constants of one quadrotor. Lengths in m, masses in kg, times in s."""

    name: str
    mass: float
    inertia: tuple[float, float, float]  # principal moments Ixx, Iyy, Izz in kg m^2
    rotor_positions: tuple[tuple[float, float, float], ...]  # 4 rotor hubs, body frame
    rotor_yaw_signs: tuple[float, float, float, float]  # sign of each rotor's yaw reaction
    thrust_coefficient: float  # static thrust = k_f * w^2, w in the rotor-speed unit
    torque_to_thrust: float  # yaw reaction torque = k_m * thrust, in m
    motor_time_constant: float  # first-order lag from commanded to actual rotor speed
    rotor_speed_min: float
    rotor_speed_max: float
    rotor_speed_unit: str
    gravity: float = 9.81
    # Brandt-Selig inflow model, C_T(J) = max(c0 - c1 J - c2 J^2, 0); off when D == 0.
    propeller_diameter: float = 0.0
    rev_per_unit: float = 1.0
    thrust_fit: tuple[float, float, float] = (0.12, 0.07, 0.1)
    # Quadratic drag: force -c * v|v| per body axis (N s^2/m^2), moment -c * w|w| (N m s^2).
    linear_drag: tuple[float, float, float] = (0.0, 0.0, 0.0)
    angular_drag: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # The lag while a rotor slows down, if it differs from motor_time_constant (which
    # then holds while it speeds up); None = the same both ways.
    motor_fall_time_constant: float | None = None

    def __post_init__(self) -> None:
        def need(ok: bool, field: str, allowed: str) -> None:
            if not ok:
                value = getattr(self, field)
                raise ValueError(f"airframe {self.name!r}: {field}={value!r}; allowed: {allowed}")

        need(_finite(self.mass) and self.mass > 0, "mass", "a finite number > 0")
        need(
            len(self.inertia) == 3 and all(_finite(i) and i > 0 for i in self.inertia),
            "inertia",
            "three finite numbers > 0",
        )
        need(
            len(self.rotor_positions) == 4 and all(len(r) == 3 for r in self.rotor_positions),
            "rotor_positions",
            "four (x, y, z) triples",
        )
        need(
            len(self.rotor_yaw_signs) == 4 and all(s in (-1.0, 1.0) for s in self.rotor_yaw_signs),
            "rotor_yaw_signs",
            "four values, each -1 or +1",
        )
        need(
            _finite(self.thrust_coefficient) and self.thrust_coefficient > 0,
            "thrust_coefficient",
            "a finite number > 0",
        )
        need(
            _finite(self.torque_to_thrust) and self.torque_to_thrust >= 0,
            "torque_to_thrust",
            "a finite number >= 0",
        )
        need(
            _finite(self.motor_time_constant) and self.motor_time_constant > 0,
            "motor_time_constant",
            "a finite number > 0",
        )
        need(
            self.motor_fall_time_constant is None
            or (_finite(self.motor_fall_time_constant) and self.motor_fall_time_constant > 0),
            "motor_fall_time_constant",
            "None (same as motor_time_constant) or a finite number > 0",
        )
        need(
            _finite(self.rotor_speed_min) and self.rotor_speed_min >= 0,
            "rotor_speed_min",
            "a finite number >= 0",
        )
        need(
            _finite(self.rotor_speed_max) and self.rotor_speed_max > self.rotor_speed_min,
            "rotor_speed_max",
            f"a finite number > rotor_speed_min ({self.rotor_speed_min})",
        )
        need(_finite(self.gravity) and self.gravity >= 0, "gravity", "a finite number >= 0")
        need(
            _finite(self.propeller_diameter) and self.propeller_diameter >= 0,
            "propeller_diameter",
            "a finite number >= 0 (0 turns the inflow model off)",
        )
        need(self.thrust_fit[0] > 0, "thrust_fit", "(c0, c1, c2) with c0 > 0")
        need(
            all(c >= 0 for c in self.linear_drag + self.angular_drag),
            "linear_drag",
            "non-negative coefficients",
        )
        need(
            self.hover_thrust_ratio() > 1.0,
            "rotor_speed_max",
            "enough rotor speed to lift the mass (thrust-to-weight > 1)",
        )

    def hover_rotor_speed(self) -> float:
        """Rotor speed at which four rotors carry the weight (static thrust)."""
        return math.sqrt(self.mass * self.gravity / (4.0 * self.thrust_coefficient))

    def hover_thrust_ratio(self) -> float:
        """Static thrust-to-weight ratio at full rotor speed."""
        full = 4.0 * self.thrust_coefficient * self.rotor_speed_max**2
        return full / (self.mass * self.gravity) if self.gravity > 0 else math.inf

    def hover_action(self) -> float:
        """The normalised action in [-1, 1] that commands the hover rotor speed."""
        span = self.rotor_speed_max - self.rotor_speed_min
        return 2.0 * (self.hover_rotor_speed() - self.rotor_speed_min) / span - 1.0

    def params_row(self) -> np.ndarray:
        """Per-environment parameters at their nominal values: no mismatch, no disturbance,
        no sensor bias, no latency (domain randomisation draws around this row)."""
        row = np.zeros(L.N_PARAMS)
        row[L.P_MASS] = self.mass
        row[L.P_IXX : L.P_IZZ + 1] = self.inertia
        row[L.P_KF] = self.thrust_coefficient
        row[L.P_KM] = self.torque_to_thrust
        row[L.P_TAU_UP] = self.motor_time_constant
        fall = self.motor_fall_time_constant
        row[L.P_TAU_DOWN] = self.motor_time_constant if fall is None else fall
        row[L.P_MOTOR : L.P_MOTOR + 4] = 1.0
        row[L.P_ARM] = 1.0
        return row

    def frame(self) -> np.ndarray:
        """Constants shared by every environment, packed for the compiled kernels."""
        fr = np.zeros(L.N_FRAME)
        fr[L.F_G] = self.gravity
        fr[L.F_D] = self.propeller_diameter
        fr[L.F_REV] = self.rev_per_unit
        fr[L.F_CT : L.F_CT + 3] = self.thrust_fit
        fr[L.F_DRAG_LIN : L.F_DRAG_LIN + 3] = self.linear_drag
        fr[L.F_DRAG_ROT : L.F_DRAG_ROT + 3] = self.angular_drag
        fr[L.F_RPOS : L.F_RPOS + 12] = np.asarray(self.rotor_positions, dtype=float).ravel()
        fr[L.F_RYAW : L.F_RYAW + 4] = self.rotor_yaw_signs
        return fr

    def replace(self, **changes) -> Airframe:
        return dataclasses.replace(self, **changes)


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _box_inertia(mass: float, x: float, y: float, z: float) -> tuple[float, float, float]:
    return (mass * (y * y + z * z) / 12, mass * (x * x + z * z) / 12, mass * (x * x + y * y) / 12)


# The Crazyflie 2.1's motor thrust in its own firmware (crazyflie-firmware,
# src/platform/interface/platform_defaults_cf2.h): at most THRUST_MAX per motor with the
# 2.1+ propellers (battery-compensated), and nothing below THRUST_MIN.
CRAZYFLIE_THRUST_MAX = 0.12  # N per motor
CRAZYFLIE_THRUST_MIN = 0.012817578393224994  # N per motor
CRAZYFLIE_THRUST_COEFFICIENT = 3.16e-10  # N/RPM^2


def _crazyflie() -> Airframe:
    a = 0.028  # hub offset along each body axis (X layout)
    return Airframe(
        name="crazyflie",
        mass=0.027,
        inertia=(3.85e-6, 3.85e-6, 5.97e-6),
        rotor_positions=((a, -a, 0.0), (-a, -a, 0.0), (-a, a, 0.0), (a, a, 0.0)),
        rotor_yaw_signs=(-1.0, 1.0, -1.0, 1.0),
        thrust_coefficient=CRAZYFLIE_THRUST_COEFFICIENT,
        torque_to_thrust=0.005964,
        motor_time_constant=0.15,
        rotor_speed_min=0.0,
        # The speed at which a rotor gives THRUST_MAX (19,487 RPM): the published 21,702
        # RPM would give 0.149 N, more thrust than the vehicle's firmware ever commands.
        rotor_speed_max=math.sqrt(CRAZYFLIE_THRUST_MAX / CRAZYFLIE_THRUST_COEFFICIENT),
        rotor_speed_unit="RPM",
    )


def _udacity() -> Airframe:
    mass, rho, cd, diameter, arm = 0.958, 1.2, 0.3, 0.1, 0.4
    width, length, height = 0.51, 0.51, 0.235
    areas = (length * height, width * height, width * length)  # faces normal to x, y, z
    dims = (width, length, height)
    fit = (0.12, 0.07, 0.1)
    return Airframe(
        name="udacity",
        mass=mass,
        inertia=_box_inertia(mass, width, length, height),
        # + layout: rotors 0/1 on the x axis (pitch), 2/3 on the y axis (roll), as upstream.
        rotor_positions=((arm, 0.0, 0.0), (-arm, 0.0, 0.0), (0.0, -arm, 0.0), (0.0, arm, 0.0)),
        rotor_yaw_signs=(1.0, 1.0, -1.0, -1.0),
        thrust_coefficient=fit[0] * rho * diameter**4,  # static C_T rho D^4, per (rev/s)^2
        # Upstream has no yaw reaction; a 0.1 m propeller with C_Q/C_T ~ 0.066 gives ~0.0066 m.
        torque_to_thrust=0.0066,
        # Upstream rotors respond instantly; 0.05 s is typical of this size of motor.
        motor_time_constant=0.05,
        rotor_speed_min=0.0,
        rotor_speed_max=900.0,
        rotor_speed_unit="rev/s",
        propeller_diameter=diameter,
        rev_per_unit=1.0,
        thrust_fit=fit,
        linear_drag=tuple(0.5 * rho * cd * a for a in areas),
        angular_drag=tuple(
            0.5 * rho * cd * a * (d / 2) ** 3 for a, d in zip(areas, dims, strict=True)
        ),
    )


PRESETS = {"crazyflie": _crazyflie, "udacity": _udacity}


def get_airframe(name: str) -> Airframe:
    """The preset called ``name``; a ValueError lists the allowed names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"airframe={name!r} is unknown; allowed: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()
