from django.contrib import admin

from accounts.forms import ThrottledAdminAuthenticationForm

# Every door that takes a password is throttled, the Django admin's included.
admin.site.login_form = ThrottledAdminAuthenticationForm
