"""Index constants for the packed arrays the compiled kernels work on.

One place defines them; the kernels, the airframes and the tests all import from here.
"""

# Simulator state, one row per environment: the vehicle itself.
POS = 0  # position x, y, z (world frame, z up), m
VEL = 3  # linear velocity, world frame, m/s
QUAT = 6  # attitude quaternion w, x, y, z (body to world), kept unit
OMEGA = 10  # body rates p, q, r (body frame), rad/s
ROTOR = 13  # actual rotor speeds, airframe unit (RPM or rev/s)
N_STATE = 17

# Per-environment parameters, drawn at each reset (domain randomisation).
P_MASS = 0
P_IXX = 1
P_IYY = 2
P_IZZ = 3
P_KF = 4  # static thrust coefficient
P_KM = 5  # yaw torque-to-thrust ratio, m
P_TAU_UP = 6  # motor time constant while the rotor speeds up, s
P_TAU_DOWN = 7  # motor time constant while it slows down, s
P_MOTOR = 8  # 4 per-motor thrust-coefficient factors (manufacturing mismatch)
P_ARM = 12  # factor on the hubs' horizontal offsets (arm length)
P_FORCE = 13  # constant disturbance force, world frame, N (3)
P_TORQUE = 16  # constant disturbance torque, body frame, N m (3)
P_GYRO_BIAS = 19  # gyro bias, rad/s (3)
P_DELAY = 22  # actuation latency, whole physics steps
N_PARAMS = 23

# Per-environment flight-controller-side state: what the board itself keeps or sees
# change within an episode. The past commands follow, N_PAST rows of 4 (newest first).
FC_INTEGRAL = 0  # integrated (observed) position error, m s (3)
FC_GUST = 3  # current gust force, world frame, N (3)
FC_PAST = 6  # past normalised commands: row k = the command of k control steps ago
N_FC_FIXED = 6

# Constants shared by all environments of one airframe.
F_G = 0  # gravity, m/s^2
F_D = 1  # propeller diameter for the inflow model (0 = off), m
F_REV = 2  # rev/s per rotor-speed unit
F_CT = 3  # Brandt-Selig fit c0, c1, c2
F_DRAG_LIN = 6  # quadratic linear drag per body axis
F_DRAG_ROT = 9  # quadratic angular drag per body axis
F_RPOS = 12  # rotor hub positions, 4 x (x, y, z), body frame
F_RYAW = 24  # rotor yaw-reaction signs, 4
N_FRAME = 28
