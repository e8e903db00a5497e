app_name = "comparisons"

urlpatterns: list = []
