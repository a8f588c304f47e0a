"""`obsq web`: the operator's live page — components, the queue, forms, images, masters, the Scheduler."""
