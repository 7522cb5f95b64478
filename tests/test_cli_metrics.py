"""`importdash metrics`: the database's figures of /metrics, printed for a textfile collector."""

from prometheus_client.parser import text_string_to_metric_families


def test_metrics_prints_the_databases_figures(runner, make_job):
    make_job(status="pending")
    make_job(status="completed", success_count=7, failed_count=2, invalid_format_count=2)

    result = runner.invoke(args=["metrics"])

    assert result.exit_code == 0, result.output
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(result.output)
        for sample in family.samples
    }
    assert samples[("importdash_queue_depth", ())] == 1
    assert samples[("importdash_jobs", (("status", "completed"),))] == 1
    assert samples[("importdash_rows", (("outcome", "succeeded"),))] == 7
    assert samples[("importdash_row_errors", (("category", "invalid_format"),))] == 2
    assert not any(name.startswith("importdash_downstream") for name, _ in samples)  # no process's own figures
