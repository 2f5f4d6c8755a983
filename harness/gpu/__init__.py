"""GPU generations: the table of chips, the images that serve them, the plan and its estimate."""
