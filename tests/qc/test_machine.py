from qc.machine import cpu_model, machine


def test_the_cpu_model_is_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t: avx2\n")
    assert cpu_model(cpuinfo) == "AMD EPYC 7B13"


def test_without_cpuinfo_the_model_falls_back_to_a_name(tmp_path):
    assert cpu_model(tmp_path / "missing") != ""


def test_the_machine_line_names_cores_and_processor():
    line = machine()
    assert " cores (" in line and cpu_model() in line
