"""Many runs from one suite: sweep points (in turn or on Ray) and rank scaling."""
