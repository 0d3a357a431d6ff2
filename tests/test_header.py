"""The generated data headers with the hand-written kernel, compiled for real: policy.h
bit-exact with the numpy model (tanh and ReLU actors), float32 vs torch, the self-test
(passing, and failing on a corrupted vector), the kernel version check, strict warnings
on gcc / clang / arm-none-eabi-gcc, cppcheck, the API names, bad input."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from firmware_support import corrupt_selftest, with_kernel_version

from export import cbuild, header, quantize, rollouts
from export import int_reference as ref
from export import model as model_mod
from export.fixtures import make_checkpoint
from export.kernel_layout import KERNEL, kernel
from export.model import ExportError

STRICT = list(cbuild.STRICT)
ARM = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]
SANITIZE = ("-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all")
CPPCHECK = [
    "cppcheck",
    "--error-exitcode=1",
    "--enable=warning,style,performance,portability",
    "--std=c99",
    "-q",
]

# ACLE's __smlad written out from the Arm architecture reference, so the SMLAD branch of
# policy.h (its weight shuffle and operand pairing) also runs on the host.
FAKE_ACLE = """
#include <stdint.h>
typedef int32_t int16x2_t;
static inline int32_t __smlad(int16x2_t a, int16x2_t b, int32_t c) {
    uint32_t ua = (uint32_t)a, ub = (uint32_t)b;
    int32_t a0 = (int16_t)(ua & 0xffffu), a1 = (int16_t)(ua >> 16);
    int32_t b0 = (int16_t)(ub & 0xffffu), b1 = (int16_t)(ub >> 16);
    return c + a0 * b0 + a1 * b1;
}
"""


# policy.h variants: file name -> hidden activation. "policy.h" is the default export.
VARIANTS = {"policy.h": "tanh", "policy_relu.h": "relu"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One export in process: policies, params, headers on disk, >= 10,000 test states.
    The ReLU actor (same shapes) is calibrated and tested on the tanh actor's states."""
    d = tmp_path_factory.mktemp("header")
    policy = model_mod.load(make_checkpoint(d / "run" / "checkpoint.pt", step=3))
    relu = model_mod.load(make_checkpoint(d / "relu" / "checkpoint.pt", activation="relu"))
    calib = rollouts.policy_states(policy.act, policy.spec, 10000, 1000)
    test = rollouts.policy_states(policy.act, policy.spec, 10000, 2000)
    params, policies = {}, {"tanh": policy, "relu": relu}
    selftest = header.selftest_states(test)
    for name, activation in VARIANTS.items():
        params[name] = quantize.quantize(policies[activation], calib)
        text = header.int_header(policies[activation], params[name], selftest).text
        header.write_header(d / name, text)
    h8 = header.int_header(policy, params["policy.h"], selftest)
    hf = header.f32_header(policy, selftest)
    header.write_header(d / "policy_f32.h", hf.text)
    return {
        "dir": d,
        "policy": policy,
        "policies": policies,
        "params": params,
        "test": test,
        "h8": h8,
        "hf": hf,
    }


@pytest.fixture(scope="module")
def drivers(built):
    d = built["dir"]
    acle = d / "acle"
    acle.mkdir()
    (acle / "arm_acle.h").write_text(FAKE_ACLE)
    smlad = ("-O2", "-D__ARM_FEATURE_DSP=1", "-D__ARMEL__=1", f"-I{acle}")
    exes = {}
    for hdr in [*VARIANTS, "policy_f32.h"]:
        exes[hdr] = cbuild.build(d / hdr, d / f"drv_{hdr}", "gcc")
        exes[hdr, "san"] = cbuild.build(d / hdr, d / f"drv_{hdr}_san", "gcc", SANITIZE)
        if hdr in VARIANTS:
            exes[hdr, "smlad"] = cbuild.build(d / hdr, d / f"drv_{hdr}_smlad", "gcc", smlad)
    return exes


def test_enough_rollout_states(built):
    assert len(built["test"]) >= 10000
    assert np.isfinite(built["test"]).all()


@pytest.mark.parametrize("build", [None, "san", "smlad"], ids=["O2", "san", "smlad"])
@pytest.mark.parametrize("hdr", list(VARIANTS))
def test_int_header_is_bit_exact_with_numpy_model(built, drivers, hdr, build):
    rc, actions = cbuild.run(drivers[hdr] if build is None else drivers[hdr, build], built["test"])
    assert (rc == 0).all()
    params = built["params"][hdr]
    got = cbuild.codes_of(actions)
    want = ref.forward_codes(params, built["test"])
    assert got.shape == want.shape == (len(built["test"]), 4)
    np.testing.assert_array_equal(got, want)
    # The codes use the width: int16 outputs are not multiples of 256.
    assert (got % 256 != 0).mean() > 0.9


def test_float_actions_are_not_codes(built, drivers):
    """codes_of refuses policy_f32.h's actions: the bit-exact check cannot pass by accident."""
    _, actions = cbuild.run(drivers["policy_f32.h"], built["test"][:100])
    with pytest.raises(ExportError, match="not a code"):
        cbuild.codes_of(actions)


@pytest.mark.parametrize("exe", ["policy_f32.h", ("policy_f32.h", "san")], ids=["O2", "san"])
def test_f32_header_matches_torch(built, drivers, exe):
    rc, actions = cbuild.run(drivers[exe], built["test"])
    assert (rc == 0).all()
    diff = np.abs(actions - built["policy"].act(built["test"])).max()
    assert diff <= 1e-5


def test_int_header_accuracy_on_rollout_states(built):
    test = built["test"]
    err = np.abs(ref.act(built["params"]["policy.h"], test) - built["policy"].act(test))
    assert err.max() <= 0.03 and err.mean() <= 0.005


@pytest.mark.parametrize(
    "exe",
    [("policy.h", "san"), ("policy_relu.h", "san"), ("policy_f32.h", "san")],
    ids=["int", "int_relu", "f32"],
)
def test_nonfinite_input_is_refused_and_action_untouched(built, drivers, exe):
    base = built["test"][:6].copy()
    bad = base.copy()
    bad[0, 0], bad[1, 5], bad[2, -1] = np.nan, np.inf, -np.inf
    bad[3, 2] = np.float32(np.nan) * -1
    huge = base[4:6].copy()
    huge[0, :] = 3e38
    huge[1, :] = -3e38
    rc, actions = cbuild.run(drivers[exe], np.concatenate([bad[:4], huge]))
    assert rc[:4].tolist() == [1, 1, 1, 1]
    assert (actions[:4] == 12345.0).all()  # the driver's sentinel: never written
    assert (rc[4:] == 0).all() and (np.abs(actions[4:]) <= 1).all()


def _compile(cc, flags, src: Path, out: Path):
    proc = subprocess.run(
        [cc, *STRICT, *flags, "-c", str(src), "-o", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr


COMPILERS = [("gcc", ["-O2"]), ("clang", ["-O2"]), ("arm-none-eabi-gcc", ["-O2", *ARM])]


HEADERS = [*VARIANTS, "policy_f32.h"]


@pytest.mark.parametrize("cc,flags", COMPILERS, ids=[c for c, _ in COMPILERS])
@pytest.mark.parametrize("which", HEADERS)
def test_headers_compile_without_warnings(built, tmp_path, cc, flags, which):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed (make deps)")
    header.write_header(tmp_path / "policy_under_test.h", (built["dir"] / which).read_text())
    src = tmp_path / "unit.c"
    src.write_text(
        '#include "policy_under_test.h"\n#define QP_POLICY_IMPLEMENTATION\n'
        '#include "policy_under_test.h"\n'
        "int use(const float *o, float *a) { return qp_policy_act(o, a); }\n"
    )
    _compile(cc, flags, src, tmp_path / "unit.o")


@pytest.mark.parametrize("hdr", list(VARIANTS))
def test_arm_build_uses_smlad_and_no_libm(built, tmp_path, hdr):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (make deps)")
    src = tmp_path / "unit.c"
    src.write_text(f'#define QP_POLICY_IMPLEMENTATION\n#include "{built["dir"]}/{hdr}"\n')
    _compile("arm-none-eabi-gcc", ["-O2", *ARM], src, tmp_path / "unit.o")
    dis = subprocess.run(
        ["arm-none-eabi-objdump", "-d", str(tmp_path / "unit.o")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "smlad" in dis and "umlal" in dis
    # int16 codes: packed as halves (PKHTB), no byte extension
    assert "pkhtb" in dis and "sxtb16" not in dis and "usat" in dis
    ops = set(re.findall(r"\t([a-z0-9]+)(?:\.[nw])?\t", dis))
    assert "mla" in ops  # the tanh table's multiply-add (the output layer is tanh)
    assert ("bic" in ops) == (VARIANTS[hdr] == "relu")  # ReLU: max(pre, 0)
    undefined = subprocess.run(
        ["arm-none-eabi-nm", "-u", str(tmp_path / "unit.o")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # Only libc's memcpy/memset (GCC may turn the zero-fill loops into memset): no libm.
    assert not [s for s in undefined if s not in ("U", "memcpy", "memset")], undefined


@pytest.mark.parametrize("which", HEADERS)
def test_cppcheck_clean(built, which):
    if shutil.which("cppcheck") is None:
        pytest.skip("cppcheck not installed (make deps)")
    # The data header with its kernel, the code of its scheme included.
    src = built["dir"] / f"cppcheck_{which}.c"
    src.write_text(f'#define QP_POLICY_IMPLEMENTATION\n#include "{which}"\n')
    proc = subprocess.run([*CPPCHECK, str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_api_names_and_values(built, tmp_path):
    """The names the firmware relies on, read back through the C preprocessor."""
    policy, d = built["policy"], built["dir"]
    src = tmp_path / "api.c"
    for hdr, scheme, sid in [
        ("policy.h", "int12w-int16a", 1),
        ("policy_f32.h", "float32", 2),
    ]:
        src.write_text(
            f'#include "{d / hdr}"\n#include <stdio.h>\n'
            'int main(void) { printf("%d %d %s %s %d %d %d %d %d %d %d\\n", QP_OBS_DIM,'
            " QP_ACT_DIM, QP_MODEL_HASH, QP_SCHEME, QP_SCHEME_ID, QP_MACS, QP_OK,"
            " QP_ERR_NONFINITE, QP_ERR_SELFTEST, QP_KERNEL_VERSION, QP_DATA_KERNEL_VERSION);"
            " return 0; }\n"
        )
        exe = tmp_path / "api"
        subprocess.run(["gcc", *STRICT, str(src), "-o", str(exe)], check=True)
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
        assert out.split() == [
            str(policy.obs_dim),
            "4",
            policy.model_hash,
            scheme,
            str(sid),
            str(policy.macs),
            "0",
            "1",
            "2",
            str(kernel()[0]),
            str(kernel()[0]),
        ]
        assert re.fullmatch(r"[0-9a-f]{64}", policy.model_hash)
        text = (d / hdr).read_text()
        if hdr != "policy_f32.h":
            assert "#define QP_OUT_ONE 32768\n" in text
    code = KERNEL.read_text()
    assert "int qp_policy_act(const float obs[QP_OBS_DIM], float action[QP_ACT_DIM]);" in code
    assert "int qp_policy_selftest(void);" in code
    for text in (code, *(p.read_text() for p in d.glob("policy*.h"))):
        assert "malloc(" not in text and "free(" not in text
        # No hidden mutable state: every file-scope static is const.
        statics = re.findall(
            r"^(?:QP_INLINE )?static (?!const|int qp_|int32_t qp_)(.*)$", text, re.M
        )
        assert statics == [] or text is code and all("(" in s for s in statics), statics


@pytest.mark.parametrize("hdr", [*VARIANTS, "policy_f32.h"])
def test_data_headers_hold_data_only(built, hdr):
    """No function and no assembly in a data header: the code is the kernel's."""
    text = (built["dir"] / hdr).read_text()
    code = text[text.index("*/") :]  # after the doc comment, which shows the API
    assert re.search(r"^\s*(?:QP_INLINE\s+)?(?:static\s+)?\w+\s+\**qp_\w+\(", code, re.M) is None
    assert "__asm__" not in text and "{\n    " not in code.replace("= {\n    ", "")
    assert f"#define QP_DATA_KERNEL_VERSION {kernel()[0]}\n" in text


def test_int_path_uses_no_float_in_the_layers():
    code = KERNEL.read_text()
    section = code[
        code.index("#if QP_SCHEME_ID == 1 /* -") : code.index("#else /* QP_SCHEME_ID == 2")
    ]
    # From the requantisation to the input quantisation: the layers' helpers.
    body = section[section.index("qp_high_mul_shift") : section.index("/* One input code")]
    assert "qp_finish16" in body and "qp_activate16" in body
    assert "float" not in body and "tanh(" not in body and "math.h" not in section


@pytest.mark.parametrize(
    "exe", [*VARIANTS, "policy_f32.h", ("policy.h", "san"), ("policy.h", "smlad")]
)
def test_selftest_passes_on_generated_headers(drivers, exe):
    assert cbuild.selftest(drivers[exe]) == 0  # QP_OK


@pytest.mark.parametrize("hdr", ["policy.h", "policy_f32.h"])
def test_selftest_fails_on_a_corrupted_vector(built, tmp_path, hdr):
    """One expected code (int) or action (float32, by more than the tolerance) changed:
    the same kernel and tables now fail the self-test with QP_ERR_SELFTEST."""
    path = tmp_path / hdr
    header.write_header(path, corrupt_selftest((built["dir"] / hdr).read_text()))
    assert cbuild.selftest(cbuild.build(path, tmp_path / "drv")) == 2  # QP_ERR_SELFTEST
    rc, actions = cbuild.run(tmp_path / "drv", built["test"][:50])  # the model itself is fine
    _, want = cbuild.run(cbuild.build(built["dir"] / hdr, tmp_path / "good"), built["test"][:50])
    assert (rc == 0).all() and np.array_equal(actions, want)


def test_kernel_version_mismatch_fails_the_build_naming_both(built, tmp_path):
    version = kernel()[0]
    (tmp_path / "policy.h").write_text((built["dir"] / "policy.h").read_text())
    (tmp_path / "qp_kernel.h").write_text(with_kernel_version(KERNEL.read_text(), version + 1))
    src = tmp_path / "unit.c"
    src.write_text('#define QP_POLICY_IMPLEMENTATION\n#include "policy.h"\n')
    proc = subprocess.run(
        ["gcc", *STRICT, "-c", str(src), "-o", str(tmp_path / "unit.o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert f"policy.h was generated for kernel version {version}:" in proc.stderr
    assert f"qp_kernel.h is kernel version {version + 1}," in proc.stderr
    # The same pair with the kernel's own version compiles.
    (tmp_path / "qp_kernel.h").write_text(KERNEL.read_text())
    _compile("gcc", [], src, tmp_path / "unit.o")


def test_kernel_alone_is_refused():
    proc = subprocess.run(
        ["gcc", *STRICT, "-fsyntax-only", "-x", "c", str(KERNEL)], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "include the data header" in proc.stderr
