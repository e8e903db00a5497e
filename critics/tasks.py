from celery import shared_task

from critics import services
from critics.models import Critic


@shared_task(acks_late=True)
def critic_train_task(critic_id: int) -> None:
    """Train, then score the dataset in the same queue (the model is loaded there already)."""
    critic = services.critic_train(critic_id=critic_id)
    if critic.status == Critic.Status.DONE:
        services.critic_score(critic_id=critic_id)


@shared_task(acks_late=True)
def critic_score_task(critic_id: int) -> None:
    services.critic_score(critic_id=critic_id)
