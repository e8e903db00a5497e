from django.db import migrations, models


class Migration(migrations.Migration):
    """Evaluation runs and student trainings hold a lease while they run (runner, heartbeat), so
    a dead worker's row is seen and taken over or failed (students.leases)."""

    dependencies = [
        ("students", "0004_evaluation_run_queue_and_pipelines"),
    ]

    operations = [
        migrations.AddField(
            model_name="evaluationrun",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="evaluationrun",
            name="runner",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="studenttraining",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="studenttraining",
            name="runner",
            field=models.CharField(blank=True, max_length=64),
        ),
    ]
